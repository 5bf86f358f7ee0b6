//! Produces the lines of standard input to a Kafka topic, one record per line (for the
//! benchmarks in `bench/watch.sh` and `bench/latency.sh`): `produce BROKERS TOPIC <
//! events.jsonl`. `LINGER_MS` (default 50) is how long the producer gathers records before
//! sending: 0 for latency measurements. `BATCH` (default 10000) is the most records in one
//! batch: the test broker (tansu 0.6) answers a fetch from an offset inside a batch with the
//! batches after it, so a consumer group that moves a partition to another worker skips the
//! rest of the batch its committed offset falls in (a real broker returns that batch); 1 for
//! runs where partitions move.

use std::io::BufRead;
use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (Some(brokers), Some(topic)) = (args.get(1), args.get(2)) else {
        eprintln!("usage: produce BROKERS TOPIC < lines");
        std::process::exit(2);
    };
    let p: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set(
            "linger.ms",
            std::env::var("LINGER_MS").unwrap_or_else(|_| "50".into()),
        )
        .set(
            "batch.num.messages",
            std::env::var("BATCH").unwrap_or_else(|_| "10000".into()),
        )
        .create()
        .expect("producer");
    let start = Instant::now();
    let mut n = 0u64;
    for line in std::io::stdin().lock().lines() {
        let line = line.expect("read stdin");
        let mut r = BaseRecord::<(), str>::to(topic).payload(line.as_str());
        loop {
            match p.send(r) {
                Ok(()) => {
                    p.poll(Duration::ZERO);
                    break;
                }
                Err((_, back)) => {
                    r = back;
                    p.poll(Duration::from_millis(20));
                }
            }
        }
        n += 1;
    }
    p.flush(Duration::from_secs(300)).expect("flush");
    eprintln!(
        "produced {n} records to {topic} in {:.1} s",
        start.elapsed().as_secs_f64()
    );
}
