//! Data parallelism for inference: independent batches shared out among
//! the current pool's threads, each batch run start to end on one thread.
//!
//! The models' GEMMs are small (a tagging batch is about 1,024 words by a
//! few hundred features), so splitting each one across threads runs out of
//! work and leaves the threads waiting on each other at every op. Giving
//! each thread whole batches instead keeps every core busy: each worker
//! runs its batches inside a pool of one thread, where our kernels, the
//! `gemm` crate and candle's matmul (patched to honour the current pool)
//! all run serially. A batch's result does not depend on which worker ran
//! it or on how many there are: every batch runs the one-thread code path,
//! so the labels equal `--threads 1`'s.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

/// One-thread pools kept for the life of the process: [`map`]'s workers.
/// Starting threads at every call cost a few percent when training steps
/// still ran their pieces here (they are now tasks of the current pool:
/// `train::Stepper::step`); calls from several threads at once share
/// these pools (correct, only slower).
static TEAM: Mutex<Vec<Arc<rayon::ThreadPool>>> = Mutex::new(Vec::new());

/// The first `n` pools of the team, started on first use.
fn team(n: usize) -> Vec<Arc<rayon::ThreadPool>> {
    let mut team = TEAM.lock().unwrap_or_else(|e| e.into_inner());
    while team.len() < n {
        let i = team.len();
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(1)
            .stack_size(8 << 20)
            .thread_name(move |_| format!("attend-shard-{i}"))
            .build()
            .expect("starting a one-thread pool");
        team.push(Arc::new(pool));
    }
    team[..n].to_vec()
}

/// `f` of every item, in item order, the items taken in turn by
/// `rayon::current_num_threads()` workers of one thread each (no more
/// workers than items). With one thread, or one item, it runs here as a
/// plain loop. The first error (by item) is returned; items after a
/// failure may not run.
pub fn map<T: Sync, R: Send, E: Send>(items: &[T], f: impl Fn(&T) -> Result<R, E> + Sync) -> Result<Vec<R>, E> {
    let workers = rayon::current_num_threads().min(items.len());
    if workers <= 1 {
        return items.iter().map(&f).collect();
    }
    let next = AtomicUsize::new(0);
    let failed = std::sync::atomic::AtomicBool::new(false);
    let results: Mutex<Vec<Option<Result<R, E>>>> = Mutex::new((0..items.len()).map(|_| None).collect());
    let work = || loop {
        let i = next.fetch_add(1, Ordering::Relaxed);
        if i >= items.len() || failed.load(Ordering::Relaxed) {
            return;
        }
        let r = f(&items[i]);
        if r.is_err() {
            failed.store(true, Ordering::Relaxed);
        }
        results.lock().expect("a shard worker panicked")[i] = Some(r);
    };
    // The calling thread hands the loop to every worker of the team at
    // once and waits for all of them: each starts as soon as its own
    // thread wakes, not after a thread of the current pool has woken to
    // hand it over (no thread is started per call either).
    let team = team(workers);
    on_each(&team, &work);
    let mut out = Vec::with_capacity(items.len());
    let mut skipped = false;
    for r in results.into_inner().expect("a shard worker panicked") {
        match r {
            Some(Ok(v)) => out.push(v),
            Some(Err(e)) => return Err(e),
            // Not run because another item failed: that failure follows.
            None => skipped = true,
        }
    }
    assert!(!skipped, "an item was skipped without a failure");
    Ok(out)
}

/// Runs `work` once on each pool of `team`, all started before any is
/// waited for (nested in-place scopes: the caller spawns into each pool and
/// blocks until every one has finished).
fn on_each(team: &[Arc<rayon::ThreadPool>], work: &(impl Fn() + Sync)) {
    if let Some((pool, rest)) = team.split_first() {
        pool.in_place_scope(|s| {
            s.spawn(|_| work());
            on_each(rest, work);
        });
    }
}

#[cfg(test)]
mod tests {
    use super::map;
    use crate::Error;

    fn pool(n: usize) -> rayon::ThreadPool {
        rayon::ThreadPoolBuilder::new().num_threads(n).build().unwrap()
    }

    #[test]
    fn results_come_in_item_order_each_item_on_a_one_thread_pool() {
        let items: Vec<usize> = (0..37).collect();
        for n in [1, 2, 3, 8] {
            let out = pool(n).install(|| map(&items, |&i| Ok::<_, Error>((i * i, rayon::current_num_threads())))).unwrap();
            assert_eq!(out.iter().map(|r| r.0).collect::<Vec<_>>(), items.iter().map(|i| i * i).collect::<Vec<_>>());
            assert!(out.iter().all(|r| r.1 == 1), "{n} threads: an item saw a pool of {:?}", out.iter().map(|r| r.1).max());
        }
        assert!(pool(4).install(|| map(&[] as &[usize], |&i| Ok::<_, Error>(i))).unwrap().is_empty());
    }

    #[test]
    fn the_first_failure_by_item_is_returned() {
        let items: Vec<usize> = (0..50).collect();
        for n in [1, 2, 4] {
            let r = pool(n).install(|| map(&items, |&i| if i % 7 == 3 { Err(Error::Input(format!("item {i}"))) } else { Ok(i) }));
            match r {
                Err(Error::Input(m)) => assert!(m.starts_with("item "), "{m}"),
                other => panic!("{other:?}"),
            }
        }
        // One thread runs in order: the first failing item is the one reported.
        let r = pool(1).install(|| map(&items, |&i| if i >= 10 { Err(Error::Input(format!("item {i}"))) } else { Ok(i) }));
        assert!(matches!(r, Err(Error::Input(m)) if m == "item 10"));
    }
}
