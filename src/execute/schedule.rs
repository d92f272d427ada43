//! Runs one step per item on a bounded pool of threads, each item only after the items it
//! depends on have finished (whatever their outcome: a failed dependency does not hold back
//! its dependents, it only goes first).

use std::sync::{Condvar, Mutex};

struct Board<R> {
    started: Vec<bool>,
    results: Vec<Option<R>>,
}

/// `step(i)` for every `i` in `0..deps.len()`, at most `concurrency` at once; `deps[i]` lists
/// the items that must finish before `i` starts. Items are started in index order among the
/// ready ones. Dependencies must not form a cycle (the plan refuses cycles).
pub(crate) fn in_dependency_order<R: Send>(
    deps: &[Vec<usize>],
    concurrency: usize,
    step: impl Fn(usize) -> R + Sync,
) -> Vec<R> {
    let count = deps.len();
    let board = Mutex::new(Board {
        started: vec![false; count],
        results: (0..count).map(|_| None).collect(),
    });
    let changed = Condvar::new();
    let worker = || {
        let mut guard = board
            .lock()
            .expect("no step panics while holding the board");
        loop {
            let ready = (0..count).find(|&i| {
                !guard.started[i] && deps[i].iter().all(|&d| guard.results[d].is_some())
            });
            if let Some(i) = ready {
                guard.started[i] = true;
                drop(guard);
                let result = step(i);
                guard = board
                    .lock()
                    .expect("no step panics while holding the board");
                guard.results[i] = Some(result);
                changed.notify_all();
            } else if guard.started.iter().all(|s| *s) {
                return;
            } else {
                guard = changed
                    .wait(guard)
                    .expect("no step panics while holding the board");
            }
        }
    };
    std::thread::scope(|scope| {
        for _ in 0..concurrency.clamp(1, count.max(1)) {
            scope.spawn(worker);
        }
    });
    board
        .into_inner()
        .expect("every worker has finished")
        .results
        .into_iter()
        .map(|r| r.expect("every item ran"))
        .collect()
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;
    use std::time::Duration;

    use super::*;

    #[test]
    fn dependencies_finish_first_and_independent_items_overlap() {
        // 0 <- 2, 1 independent, 3 <- 0 and 1.
        let deps = vec![vec![], vec![], vec![0], vec![0, 1]];
        let log = Mutex::new(Vec::new());
        let results = in_dependency_order(&deps, 2, |i| {
            log.lock().unwrap().push(("start", i));
            std::thread::sleep(Duration::from_millis(20));
            log.lock().unwrap().push(("end", i));
            i * 10
        });
        assert_eq!(results, vec![0, 10, 20, 30]);
        let log = log.into_inner().unwrap();
        let at = |event: (&str, usize)| log.iter().position(|e| *e == event).unwrap();
        assert!(at(("end", 0)) < at(("start", 2)));
        assert!(at(("end", 0)) < at(("start", 3)));
        assert!(at(("end", 1)) < at(("start", 3)));
        // 0 and 1 ran at the same time.
        assert!(at(("start", 1)) < at(("end", 0)));
    }

    #[test]
    fn one_worker_runs_in_order_and_nothing_is_fine() {
        let results = in_dependency_order(&[vec![], vec![0]], 1, |i| i);
        assert_eq!(results, vec![0, 1]);
        assert!(in_dependency_order(&[], 4, |i| i).is_empty());
    }
}
