//! How the binding runs library work: on a thread pool of its own size
//! (built per call, so no thread outlives it: nothing to oversubscribe, and
//! nothing for a forked child to inherit), with the GIL released, while the
//! calling thread waits, forwards progress to Python and checks for Ctrl-C
//! (which stops training at the next step, as in the CLI).

use attend::train::{EpochSummary, Observer};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::Duration;

/// Worker threads asked for (`None`: [`default_threads`]).
pub(crate) type Threads = Option<usize>;

/// Threads when none are asked for: `RAYON_NUM_THREADS` if set, else the
/// cores this process may use.
#[pyfunction]
pub(crate) fn default_threads() -> usize {
    std::env::var("RAYON_NUM_THREADS")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .filter(|&n: &usize| n > 0)
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}

/// Sends each finished epoch, as JSON, to the waiting Python thread.
struct Forward(mpsc::Sender<String>);

impl Observer for Forward {
    fn epoch_end(&mut self, summary: &EpochSummary) {
        let _ = self.0.send(serde_json::to_string(summary).unwrap_or_default());
    }
}

/// Runs `work` on a pool of `threads` workers with the GIL released.
/// `progress` (a Python callable) gets each finished epoch as a JSON
/// string. Ctrl-C (or an exception from `progress`) sets the interrupt
/// flag `work` is given, waits for it to stop, and raises. A panic in
/// the library comes back as an exception naming it a bug.
pub(crate) fn compute<T, W>(py: Python<'_>, threads: Threads, progress: Option<Py<PyAny>>, work: W) -> PyResult<T>
where
    T: Send,
    W: FnOnce(&AtomicBool, &mut dyn Observer) -> attend::Result<T> + Send,
{
    let n = threads.unwrap_or_else(default_threads);
    if n == 0 {
        return Err(PyValueError::new_err("n_threads must be at least 1"));
    }
    let pool = attend::rayon::ThreadPoolBuilder::new()
        .num_threads(n)
        .stack_size(8 << 20)
        .thread_name(|i| format!("attend-{i}"))
        .build()
        .map_err(|e| PyValueError::new_err(format!("could not start {n} threads: {e}")))?;
    let interrupt = AtomicBool::new(false);
    let (tx, rx) = mpsc::channel::<String>();
    let mut stopped: Option<PyErr> = None;
    let outcome = std::thread::scope(|scope| {
        let (pool, interrupt) = (&pool, &interrupt);
        let handle = scope.spawn(move || {
            let mut observer = Forward(tx);
            pool.install(|| work(interrupt, &mut observer))
        });
        let mut rx = Some(rx);
        loop {
            let receiver = rx.take().expect("kept");
            let (messages, receiver) = py.detach(move || {
                let mut got = Vec::new();
                if let Ok(m) = receiver.recv_timeout(Duration::from_millis(100)) {
                    got.push(m);
                    got.extend(receiver.try_iter());
                }
                (got, receiver)
            });
            let finished = handle.is_finished();
            // Once the work has finished, every message it sent is queued.
            let rest: Vec<String> = if finished { receiver.try_iter().collect() } else { Vec::new() };
            rx = Some(receiver);
            if let Some(callback) = progress.as_ref().filter(|_| stopped.is_none()) {
                for m in messages.into_iter().chain(rest) {
                    if let Err(e) = callback.call1(py, (m,)) {
                        interrupt.store(true, Ordering::Relaxed);
                        stopped = Some(e);
                        break;
                    }
                }
            }
            if finished {
                break;
            }
            if stopped.is_none() {
                if let Err(e) = py.check_signals() {
                    interrupt.store(true, Ordering::Relaxed);
                    stopped = Some(e);
                }
            }
        }
        py.detach(|| handle.join())
    });
    if let Some(e) = stopped {
        return Err(e);
    }
    match outcome {
        Ok(result) => result.map_err(crate::py_err),
        Err(panic) => {
            let what = panic
                .downcast_ref::<String>()
                .map(String::as_str)
                .or_else(|| panic.downcast_ref::<&str>().copied())
                .unwrap_or("no message");
            Err(crate::AttendError::new_err(format!("attend failed inside (a bug, please report it): {what}")))
        }
    }
}
