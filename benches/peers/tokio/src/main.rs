// S1-S3 and S7c of benches/README.md on Tokio's multi-threaded runtime,
// to compare with bench_sched in one sitting (benches/peers/run).
//
//   WEFT_WORKERS=2 peer-tokio S1|S2|S3|S7c-k2|S7c-k10|S7c-k16
//
// As in bench_sched: the driver is a task, the timed interval starts right
// before the first spawn and ends when the driver sees the completion
// signal (a Notify, set by the task that brings the shared counter to its
// target; S7c: the root's join), and the output is one RESULT line.
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;
use tokio::sync::{mpsc, Notify};

struct Bench {
    counter: AtomicUsize,
    target: usize,
    done: Notify,
}

fn count_one(b: &Bench) {
    if b.counter.fetch_add(1, Ordering::SeqCst) + 1 == b.target {
        b.done.notify_one();
    }
}

fn s1(b: &'static Bench) -> usize {
    for _ in 0..b.target {
        tokio::spawn(async move { count_one(b) });
    }
    100_000
}

fn s2(b: &'static Bench) -> usize {
    for _ in 0..b.target {
        tokio::spawn(async move {
            for _ in 0..1000 {
                tokio::task::yield_now().await;
            }
            count_one(b);
        });
    }
    200_000
}

fn s3(b: &'static Bench) -> usize {
    for _ in 0..b.target {
        let (ping_tx, mut ping_rx) = mpsc::channel::<usize>(1);
        let (pong_tx, mut pong_rx) = mpsc::channel::<usize>(1);
        tokio::spawn(async move {
            while let Some(v) = ping_rx.recv().await {
                let _ = pong_tx.send(v).await;
            }
        });
        tokio::spawn(async move {
            for i in 0..1000usize {
                ping_tx.send(i).await.unwrap();
                assert_eq!(pong_rx.recv().await.unwrap(), i);
            }
            drop(ping_tx);
            count_one(b);
        });
    }
    1_000_000
}

// S7c: leaves return their number, parents the sum of their children's.
fn tree(k: u64, depth: u32, first: u64) -> Pin<Box<dyn Future<Output = u64> + Send>> {
    Box::pin(async move {
        if depth == 0 {
            return first;
        }
        let span = k.pow(depth - 1);
        let kids: Vec<_> = (0..k)
            .map(|i| tokio::spawn(tree(k, depth - 1, first + i * span)))
            .collect();
        let mut sum = 0;
        for h in kids {
            sum += h.await.unwrap();
        }
        sum
    })
}

async fn s7c(k: u64, depth: u32) -> usize {
    let leaves = k.pow(depth);
    let sum = tokio::spawn(tree(k, depth, 0)).await.unwrap();
    assert_eq!(sum, leaves * (leaves - 1) / 2, "S7c tree: wrong result");
    ((k.pow(depth + 1) - 1) / (k - 1)) as usize
}

fn main() {
    let wl = std::env::args().nth(1).unwrap_or_default();
    let workers: usize = std::env::var("WEFT_WORKERS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(2);
    let target = match wl.as_str() {
        "S1" => 100_000,
        "S2" => 200,
        "S3" => 1000,
        "S7c-k2" | "S7c-k10" | "S7c-k16" => 1,
        _ => {
            eprintln!("usage: peer-tokio S1|S2|S3|S7c-k2|S7c-k10|S7c-k16");
            std::process::exit(2);
        }
    };
    let b: &'static Bench = Box::leak(Box::new(Bench {
        counter: AtomicUsize::new(0),
        target,
        done: Notify::new(),
    }));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .build()
        .unwrap();
    let name = wl.clone();
    let (ops, secs) = rt.block_on(async move {
        tokio::spawn(async move {
            let done = b.done.notified();
            tokio::pin!(done);
            done.as_mut().enable();
            let t0 = Instant::now();
            let ops = match name.as_str() {
                "S1" => s1(b),
                "S2" => s2(b),
                "S3" => s3(b),
                "S7c-k2" => s7c(2, 19).await,
                "S7c-k10" => s7c(10, 6).await,
                _ => s7c(16, 5).await,
            };
            if name.starts_with("S7") {
                count_one(b);
            }
            done.await;
            (ops, t0.elapsed().as_secs_f64())
        })
        .await
        .unwrap()
    });
    println!(
        "RESULT workload={} workers={} ops={} secs={:.6} rate={:.0}",
        wl, workers, ops, secs, ops as f64 / secs
    );
}
