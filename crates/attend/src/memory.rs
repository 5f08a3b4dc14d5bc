//! What the system says about memory: what is available (inputs that would
//! not fit are refused up front), this process's peak resident set, and
//! bytes for people to read. (The counting allocator the benchmarks use is
//! the CLI's: `attend_cli::memory`.)

/// Memory the system says is available (Linux `MemAvailable`), or 8 GiB
/// where it cannot be read. Inputs whose dense form would not fit are
/// refused up front with a message rather than failing half-way.
pub fn available_bytes() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|text| {
            let line = text.lines().find(|l| l.starts_with("MemAvailable:"))?;
            let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
            Some(kib * 1024)
        })
        .unwrap_or(8 << 30)
}

/// This process's peak resident set size so far (Linux `VmHWM`), if the
/// system reports it.
pub fn peak_rss_bytes() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = text.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// Bytes as `"12.3 MiB"` or `"4.0 GiB"`.
pub fn human_bytes(bytes: u64) -> String {
    if bytes >= 1 << 30 {
        format!("{:.1} GiB", bytes as f64 / (1u64 << 30) as f64)
    } else {
        format!("{:.1} MiB", bytes as f64 / (1u64 << 20) as f64)
    }
}
