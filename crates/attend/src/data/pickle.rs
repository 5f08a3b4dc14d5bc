//! A small reader of Python pickles: enough of protocols 0-4 to load the
//! Planetoid release (NumPy arrays, SciPy CSR matrices, a `defaultdict` of
//! lists) without Python. It builds values only; it never runs code, and a
//! class or function a pickle names is kept as a name ([`Value::Global`]).
//!
//! Any bytes give a value or an error naming the byte offset, never a panic
//! (fuzzed). One limit: values are dropped recursively, so a crafted pickle
//! nested tens of thousands of levels deep can exhaust the stack; NumPy and
//! SciPy objects are a few levels deep.

use std::cell::RefCell;
use std::rc::Rc;

/// A value a pickle describes.
#[derive(Debug, Clone)]
pub enum Value {
    None,
    Bool(bool),
    Int(i64),
    Float(f64),
    /// Python 2 `str` or Python 3 `bytes`.
    Bytes(Rc<Vec<u8>>),
    Str(Rc<str>),
    Tuple(Rc<Vec<Value>>),
    List(Rc<RefCell<Vec<Value>>>),
    Dict(Rc<RefCell<Vec<(Value, Value)>>>),
    /// `module.name` of a class or function.
    Global(Rc<str>, Rc<str>),
    /// What calling a global made (`REDUCE`, `NEWOBJ`): the callable, its
    /// arguments, the state `BUILD` gave it, and items or elements added
    /// to it (a `defaultdict` or a list subclass).
    Object(Rc<RefCell<Object>>),
}

#[derive(Debug, Clone)]
pub struct Object {
    pub callable: Value,
    pub args: Value,
    pub state: Option<Value>,
    pub items: Vec<(Value, Value)>,
    pub elements: Vec<Value>,
}

impl Value {
    pub fn as_int(&self) -> Option<i64> {
        match self {
            Value::Int(i) => Some(*i),
            Value::Bool(b) => Some(*b as i64),
            _ => None,
        }
    }

    /// Text of a `str`/`bytes` value (bytes read as Latin-1, as Python 2 strings were).
    pub fn as_text(&self) -> Option<String> {
        match self {
            Value::Str(s) => Some(s.to_string()),
            Value::Bytes(b) => Some(b.iter().map(|&c| c as char).collect()),
            _ => None,
        }
    }

    /// The elements of a tuple or list.
    pub fn elements(&self) -> Option<Vec<Value>> {
        match self {
            Value::Tuple(t) => Some(t.to_vec()),
            Value::List(l) => Some(l.borrow().clone()),
            Value::Object(o) => Some(o.borrow().elements.clone()),
            _ => None,
        }
    }

    /// The entries of a dict, or of a dict-like object (`defaultdict`).
    pub fn entries(&self) -> Option<Vec<(Value, Value)>> {
        match self {
            Value::Dict(d) => Some(d.borrow().clone()),
            Value::Object(o) => Some(o.borrow().items.clone()),
            _ => None,
        }
    }

    /// The value under string key `key` of a dict.
    pub fn get(&self, key: &str) -> Option<Value> {
        self.entries()?.into_iter().find(|(k, _)| k.as_text().as_deref() == Some(key)).map(|(_, v)| v)
    }

    /// `module.name` of a global, or of the callable that made an object.
    pub fn class_name(&self) -> Option<String> {
        match self {
            Value::Global(m, n) => Some(format!("{m}.{n}")),
            Value::Object(o) => o.borrow().callable.class_name(),
            _ => None,
        }
    }
}

/// Reads one pickle. `what` names the data in errors (a file path).
pub fn load(bytes: &[u8], what: &str) -> Result<Value, String> {
    Machine { bytes, pos: 0, stack: Vec::new(), marks: Vec::new(), memo: std::collections::HashMap::new(), what }.run()
}

struct Machine<'a> {
    bytes: &'a [u8],
    pos: usize,
    stack: Vec<Value>,
    marks: Vec<usize>,
    memo: std::collections::HashMap<u64, Value>,
    what: &'a str,
}

impl<'a> Machine<'a> {
    fn err(&self, message: impl std::fmt::Display) -> String {
        format!("{}: pickle byte {}: {message}", self.what, self.pos)
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.bytes.len()).ok_or_else(|| self.err("ends early"))?;
        let out = &self.bytes[self.pos..end];
        self.pos = end;
        Ok(out)
    }

    fn u8(&mut self) -> Result<u8, String> {
        Ok(self.take(1)?[0])
    }

    fn le(&mut self, n: usize) -> Result<u64, String> {
        Ok(self.take(n)?.iter().rev().fold(0u64, |acc, &b| (acc << 8) | b as u64))
    }

    fn line(&mut self) -> Result<&'a str, String> {
        let rest = &self.bytes[self.pos..];
        let n = rest.iter().position(|&b| b == b'\n').ok_or_else(|| self.err("a text argument has no end of line"))?;
        let line = std::str::from_utf8(&rest[..n]).map_err(|_| self.err("a text argument is not UTF-8"))?;
        self.pos += n + 1;
        Ok(line)
    }

    fn pop(&mut self) -> Result<Value, String> {
        self.stack.pop().ok_or_else(|| self.err("the stack is empty"))
    }

    fn top(&mut self) -> Result<&mut Value, String> {
        let at = self.pos;
        self.stack.last_mut().ok_or_else(|| format!("{}: pickle byte {at}: the stack is empty", self.what))
    }

    fn pop_mark(&mut self) -> Result<Vec<Value>, String> {
        let mark = self.marks.pop().ok_or_else(|| self.err("no MARK to pop to"))?;
        if mark > self.stack.len() {
            return Err(self.err("MARK beyond the stack"));
        }
        Ok(self.stack.split_off(mark))
    }

    fn sized(&mut self, len: u64) -> Result<&'a [u8], String> {
        let len = usize::try_from(len).map_err(|_| self.err("length too large"))?;
        self.take(len)
    }

    fn memo_get(&self, key: u64) -> Result<Value, String> {
        self.memo.get(&key).cloned().ok_or_else(|| self.err(format!("memo entry {key} was never stored")))
    }

    fn run(mut self) -> Result<Value, String> {
        loop {
            let op = self.u8()?;
            match op {
                0x80 => {
                    let proto = self.u8()?;
                    if proto > 5 {
                        return Err(self.err(format!("pickle protocol {proto} is not supported")));
                    }
                }
                0x95 => {
                    self.le(8)?; // FRAME: a length hint only
                }
                b'.' => return self.pop(),
                b'(' => self.marks.push(self.stack.len()),
                b'N' => self.stack.push(Value::None),
                0x88 => self.stack.push(Value::Bool(true)),
                0x89 => self.stack.push(Value::Bool(false)),
                b'K' => {
                    let v = self.u8()?;
                    self.stack.push(Value::Int(v as i64));
                }
                b'M' => {
                    let v = self.le(2)?;
                    self.stack.push(Value::Int(v as i64));
                }
                b'J' => {
                    let v = self.le(4)? as u32 as i32;
                    self.stack.push(Value::Int(v as i64));
                }
                0x8a => {
                    let n = self.u8()? as usize;
                    let bytes = self.take(n)?;
                    if n > 8 {
                        return Err(self.err("an integer wider than 64 bits"));
                    }
                    let mut v: i64 = 0;
                    for (i, &b) in bytes.iter().enumerate() {
                        v |= (b as i64) << (8 * i);
                    }
                    if n > 0 && n < 8 && bytes[n - 1] & 0x80 != 0 {
                        v -= 1i64 << (8 * n); // sign
                    }
                    self.stack.push(Value::Int(v));
                }
                b'I' => {
                    let line = self.line()?;
                    let v = match line {
                        "01" => Value::Bool(true),
                        "00" => Value::Bool(false),
                        s => Value::Int(s.parse().map_err(|_| self.err(format!("bad INT {s:?}")))?),
                    };
                    self.stack.push(v);
                }
                b'L' => {
                    let line = self.line()?;
                    let v = line.trim_end_matches('L').parse().map_err(|_| self.err(format!("bad LONG {line:?}")))?;
                    self.stack.push(Value::Int(v));
                }
                b'G' => {
                    let v = f64::from_bits(u64::from_be_bytes(self.take(8)?.try_into().expect("8 bytes")));
                    self.stack.push(Value::Float(v));
                }
                b'F' => {
                    let line = self.line()?;
                    let v = line.parse().map_err(|_| self.err(format!("bad FLOAT {line:?}")))?;
                    self.stack.push(Value::Float(v));
                }
                b'U' | b'T' | b'C' | b'B' | 0x8e => {
                    let len = match op {
                        b'U' | b'C' => self.u8()? as u64,
                        b'T' | b'B' => self.le(4)?,
                        _ => self.le(8)?,
                    };
                    let bytes = self.sized(len)?.to_vec();
                    self.stack.push(Value::Bytes(Rc::new(bytes)));
                }
                0x8c | b'X' | 0x8d => {
                    let len = match op {
                        0x8c => self.u8()? as u64,
                        b'X' => self.le(4)?,
                        _ => self.le(8)?,
                    };
                    let bytes = self.sized(len)?;
                    let s = std::str::from_utf8(bytes).map_err(|_| self.err("a string is not UTF-8"))?;
                    self.stack.push(Value::Str(s.into()));
                }
                b'S' => {
                    let line = self.line()?;
                    let inner = line.get(1..line.len().saturating_sub(1)).unwrap_or_default();
                    self.stack.push(Value::Bytes(Rc::new(inner.as_bytes().to_vec())));
                }
                b')' => self.stack.push(Value::Tuple(Rc::new(Vec::new()))),
                0x85..=0x87 => {
                    let n = (op - 0x84) as usize;
                    if self.stack.len() < n {
                        return Err(self.err("the stack is too short for a tuple"));
                    }
                    let items = self.stack.split_off(self.stack.len() - n);
                    self.stack.push(Value::Tuple(Rc::new(items)));
                }
                b't' => {
                    let items = self.pop_mark()?;
                    self.stack.push(Value::Tuple(Rc::new(items)));
                }
                b']' => self.stack.push(Value::List(Rc::new(RefCell::new(Vec::new())))),
                b'l' => {
                    let items = self.pop_mark()?;
                    self.stack.push(Value::List(Rc::new(RefCell::new(items))));
                }
                b'}' => self.stack.push(Value::Dict(Rc::new(RefCell::new(Vec::new())))),
                b'd' => {
                    let items = self.pop_mark()?;
                    let pairs = pairs(items).map_err(|m| self.err(m))?;
                    self.stack.push(Value::Dict(Rc::new(RefCell::new(pairs))));
                }
                b'a' | b'e' => {
                    let items = if op == b'a' { vec![self.pop()?] } else { self.pop_mark()? };
                    let at = self.pos;
                    match self.top()? {
                        Value::List(l) => l.borrow_mut().extend(items),
                        Value::Object(o) => o.borrow_mut().elements.extend(items),
                        _ => return Err(format!("{}: pickle byte {at}: APPEND to something that is not a list", self.what)),
                    }
                }
                b's' | b'u' => {
                    let items = if op == b's' {
                        let v = self.pop()?;
                        let k = self.pop()?;
                        vec![(k, v)]
                    } else {
                        let flat = self.pop_mark()?;
                        pairs(flat).map_err(|m| self.err(m))?
                    };
                    let at = self.pos;
                    match self.top()? {
                        Value::Dict(d) => d.borrow_mut().extend(items),
                        Value::Object(o) => o.borrow_mut().items.extend(items),
                        _ => return Err(format!("{}: pickle byte {at}: SETITEM on something that is not a dict", self.what)),
                    }
                }
                b'c' => {
                    let module = self.line()?;
                    let name = self.line()?;
                    self.stack.push(Value::Global(module.into(), name.into()));
                }
                0x93 => {
                    let name = self.pop()?.as_text().ok_or_else(|| self.err("STACK_GLOBAL needs strings"))?;
                    let module = self.pop()?.as_text().ok_or_else(|| self.err("STACK_GLOBAL needs strings"))?;
                    self.stack.push(Value::Global(module.into(), name.into()));
                }
                b'R' | 0x81 => {
                    let args = self.pop()?;
                    let callable = self.pop()?;
                    self.stack.push(object(callable, args));
                }
                0x92 => {
                    let _kwargs = self.pop()?;
                    let args = self.pop()?;
                    let callable = self.pop()?;
                    self.stack.push(object(callable, args));
                }
                b'b' => {
                    let state = self.pop()?;
                    let at = self.pos;
                    match self.top()? {
                        Value::Object(o) => o.borrow_mut().state = Some(state),
                        _ => return Err(format!("{}: pickle byte {at}: BUILD on something that is not an object", self.what)),
                    }
                }
                b'q' => {
                    let key = self.u8()? as u64;
                    let v = self.top()?.clone();
                    self.memo.insert(key, v);
                }
                b'r' => {
                    let key = self.le(4)?;
                    let v = self.top()?.clone();
                    self.memo.insert(key, v);
                }
                0x94 => {
                    let key = self.memo.len() as u64;
                    let v = self.top()?.clone();
                    self.memo.insert(key, v);
                }
                b'p' => {
                    let key = self.line()?.parse().map_err(|_| self.err("bad PUT index"))?;
                    let v = self.top()?.clone();
                    self.memo.insert(key, v);
                }
                b'h' => {
                    let key = self.u8()? as u64;
                    let v = self.memo_get(key)?;
                    self.stack.push(v);
                }
                b'j' => {
                    let key = self.le(4)?;
                    let v = self.memo_get(key)?;
                    self.stack.push(v);
                }
                b'g' => {
                    let key = self.line()?.parse().map_err(|_| self.err("bad GET index"))?;
                    let v = self.memo_get(key)?;
                    self.stack.push(v);
                }
                b'0' => {
                    self.pop()?;
                }
                b'2' => {
                    let v = self.top()?.clone();
                    self.stack.push(v);
                }
                b'1' => {
                    self.pop_mark()?;
                }
                other => return Err(self.err(format!("opcode 0x{other:02x} is not supported"))),
            }
        }
    }
}

fn object(callable: Value, args: Value) -> Value {
    Value::Object(Rc::new(RefCell::new(Object { callable, args, state: None, items: Vec::new(), elements: Vec::new() })))
}

fn pairs(flat: Vec<Value>) -> Result<Vec<(Value, Value)>, String> {
    if !flat.len().is_multiple_of(2) {
        return Err("an odd number of items for a dict".into());
    }
    let mut it = flat.into_iter();
    let mut out = Vec::new();
    while let (Some(k), Some(v)) = (it.next(), it.next()) {
        out.push((k, v));
    }
    Ok(out)
}

/// A NumPy array read from a pickle: its shape and its elements as f64,
/// in row-major order.
#[derive(Debug, Clone, PartialEq)]
pub struct Array {
    pub shape: Vec<usize>,
    pub data: Vec<f64>,
}

/// Decodes a pickled `numpy.ndarray` of booleans, integers or floats.
pub fn ndarray(v: &Value) -> Result<Array, String> {
    let Value::Object(o) = v else { return Err("expected a NumPy array".into()) };
    let o = o.borrow();
    let state = o.state.as_ref().and_then(Value::elements).ok_or("a NumPy array without its state")?;
    // (version, shape, dtype, is_fortran, raw data)
    let [_, shape, dtype, fortran, raw] = <[Value; 5]>::try_from(state).map_err(|_| "a NumPy array state of unexpected length")?;
    let shape: Vec<usize> = shape
        .elements()
        .ok_or("array shape is not a tuple")?
        .iter()
        .map(|d| d.as_int().and_then(|d| usize::try_from(d).ok()))
        .collect::<Option<_>>()
        .ok_or("array shape holds a non-integer")?;
    if matches!(fortran, Value::Bool(true)) && shape.len() > 1 {
        return Err("Fortran-ordered arrays are not supported".into());
    }
    let Value::Object(d) = &dtype else { return Err("array dtype missing".into()) };
    let d = d.borrow();
    let code = d.args.elements().and_then(|a| a.first().and_then(Value::as_text)).ok_or("array dtype without a type code")?;
    let order = d.state.as_ref().and_then(Value::elements).and_then(|s| s.get(1).and_then(Value::as_text)).unwrap_or_else(|| "<".into());
    let big = order == ">";
    let raw = match raw {
        Value::Bytes(b) => b,
        Value::Str(s) => Rc::new(s.chars().map(|c| c as u32 as u8).collect()), // Python 2 str pickled as latin-1 unicode
        _ => return Err("array data is not a byte string".into()),
    };
    let count = shape.iter().try_fold(1usize, |a, &d| a.checked_mul(d)).ok_or("array too large")?;
    let (size, decode): (usize, fn(&[u8]) -> f64) = match code.as_str() {
        "b1" | "?" | "u1" => (1, |b| b[0] as f64),
        "i1" => (1, |b| b[0] as i8 as f64),
        "i2" => (2, |b| i16::from_le_bytes([b[0], b[1]]) as f64),
        "u2" => (2, |b| u16::from_le_bytes([b[0], b[1]]) as f64),
        "i4" => (4, |b| i32::from_le_bytes(b.try_into().expect("4 bytes")) as f64),
        "u4" => (4, |b| u32::from_le_bytes(b.try_into().expect("4 bytes")) as f64),
        "i8" => (8, |b| i64::from_le_bytes(b.try_into().expect("8 bytes")) as f64),
        "u8" => (8, |b| u64::from_le_bytes(b.try_into().expect("8 bytes")) as f64),
        "f4" => (4, |b| f32::from_le_bytes(b.try_into().expect("4 bytes")) as f64),
        "f8" => (8, |b| f64::from_le_bytes(b.try_into().expect("8 bytes"))),
        other => return Err(format!("array type {other:?} is not supported")),
    };
    if count.checked_mul(size) != Some(raw.len()) {
        return Err(format!("array data has {} bytes, not what its shape {shape:?} of {code} needs", raw.len()));
    }
    let data = raw
        .chunks_exact(size)
        .map(|c| {
            let mut b = c.to_vec();
            if big {
                b.reverse();
            }
            decode(&b)
        })
        .collect();
    Ok(Array { shape, data })
}

/// Decodes a pickled `scipy.sparse` CSR matrix into a dense row-major
/// array (at most 2^27 elements, 1 GiB: PubMed, the largest Planetoid
/// set, has 10 M).
pub fn csr_matrix(v: &Value) -> Result<Array, String> {
    csr_matrix_within(v, 1 << 27)
}

/// [`csr_matrix`] refusing matrices of more than `max_elements` elements.
pub fn csr_matrix_within(v: &Value, max_elements: usize) -> Result<Array, String> {
    let Value::Object(o) = v else { return Err("expected a SciPy sparse matrix".into()) };
    let class = v.class_name().unwrap_or_default();
    if !class.contains("csr") {
        return Err(format!("expected a CSR matrix, found {class}"));
    }
    let state = o.borrow().state.clone().ok_or("a sparse matrix without its state")?;
    let field = |name: &str| state.get(name).ok_or_else(|| format!("the CSR matrix has no {name}"));
    let shape = field("_shape").or_else(|_| field("shape"))?;
    let dims: Vec<usize> =
        shape.elements().unwrap_or_default().iter().filter_map(|d| d.as_int().and_then(|d| usize::try_from(d).ok())).collect();
    let [rows, cols] = <[usize; 2]>::try_from(dims).map_err(|_| "the CSR shape is not two numbers")?;
    let indptr = ndarray(&field("indptr")?)?.data;
    let indices = ndarray(&field("indices")?)?.data;
    let values = ndarray(&field("data")?)?.data;
    if indptr.len() != rows + 1 || indices.len() != values.len() {
        return Err("the CSR arrays do not fit together".into());
    }
    let size = rows
        .checked_mul(cols)
        .filter(|&n| n <= max_elements)
        .ok_or_else(|| format!("a {rows} x {cols} matrix is too large to hold densely"))?;
    let mut dense = vec![0.0; size];
    for r in 0..rows {
        let (lo, hi) = (indptr[r] as usize, indptr[r + 1] as usize);
        if lo > hi || hi > indices.len() {
            return Err(format!("CSR row {r} has a bad range"));
        }
        for k in lo..hi {
            let c = indices[k] as usize;
            if c >= cols {
                return Err(format!("CSR column {c} is outside {cols} columns"));
            }
            dense[r * cols + c] = values[k];
        }
    }
    Ok(Array { shape: vec![rows, cols], data: dense })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `pickle.dumps({'a': [1, 2], 'b': (True, None, 1.5)}, protocol=2)` in Python 3.
    const SMALL: &[u8] =
        b"\x80\x02}q\x00(X\x01\x00\x00\x00aq\x01]q\x02(K\x01K\x02eX\x01\x00\x00\x00bq\x03\x88NG?\xf8\x00\x00\x00\x00\x00\x00\x87q\x04u.";
    /// The same with `'a': [1, -300, 2**40]`, protocol 4 (frames, memoize, long integers).
    const PROTOCOL4: &[u8] = b"\x80\x04\x95-\x00\x00\x00\x00\x00\x00\x00}\x94(\x8c\x01a\x94]\x94(K\x01J\xd4\xfe\xff\xff\x8a\x06\x00\x00\x00\x00\x00\x01e\x8c\x01b\x94\x88NG?\xf8\x00\x00\x00\x00\x00\x00\x87\x94u.";

    #[test]
    fn reads_containers_and_scalars() {
        let v = load(SMALL, "small").unwrap();
        let ints = |v: &Value| v.get("a").unwrap().elements().unwrap().iter().map(|x| x.as_int().unwrap()).collect::<Vec<_>>();
        assert_eq!(ints(&v), [1, 2]);
        let b = v.get("b").unwrap().elements().unwrap();
        assert!(matches!(b[..], [Value::Bool(true), Value::None, Value::Float(x)] if x == 1.5));
        let v4 = load(PROTOCOL4, "p4").unwrap();
        assert_eq!(ints(&v4), [1, -300, 1 << 40]);
    }

    #[test]
    fn numpy_arrays_and_csr_matrices_decode() {
        let [dense, csr] = crate::fuzzing::sample_pickles();
        let a = ndarray(&load(&dense, "dense").unwrap()).unwrap();
        assert_eq!(a, Array { shape: vec![2, 3], data: vec![0.5, 1.0, 1.5, 2.0, 2.5, 3.0] });
        let m = csr_matrix(&load(&csr, "csr").unwrap()).unwrap();
        assert_eq!(m, Array { shape: vec![2, 3], data: vec![0.0, 0.0, 1.5, 2.0, 0.0, 0.0] });
        assert!(csr_matrix_within(&load(&csr, "csr").unwrap(), 5).unwrap_err().contains("2 x 3 matrix is too large"));
        assert!(csr_matrix(&load(&dense, "dense").unwrap()).unwrap_err().contains("expected a CSR matrix"));
    }

    #[test]
    fn broken_input_is_an_error_not_a_panic() {
        for n in 0..SMALL.len() {
            let _ = load(&SMALL[..n], "cut");
        }
        let err = load(b"\x80\x02\xff", "x.pkl").unwrap_err();
        assert!(err.contains("x.pkl: pickle byte 3") && err.contains("0xff"), "{err}");
        assert!(load(b"\x80\x02h\x05.", "m").unwrap_err().contains("memo entry 5"));
    }
}
