//! UTC day arithmetic and the statistics the baselines use.

use cellwarden_event::Timestamp;

/// A UTC day: days since 1970-01-01.
pub type Day = i32;

/// UTC day of a time.
pub fn day_of(t: Timestamp) -> Day {
    t.as_second().div_euclid(86_400) as Day
}

/// UTC hour (0–23) of a time.
pub fn hour_of(t: Timestamp) -> u32 {
    (t.as_second().rem_euclid(86_400) / 3600) as u32
}

/// `YYYY-MM-DD` of a day.
pub fn date_of_day(day: Day) -> String {
    Timestamp::from_second(day as i64 * 86_400)
        .map(|t| t.strftime("%Y-%m-%d").to_string())
        .unwrap_or_default()
}

/// The 90th percentile (nearest rank, rounded); the default value of an empty list.
pub fn p90<T: Ord + Copy + Default>(mut v: Vec<T>) -> T {
    if v.is_empty() {
        return T::default();
    }
    v.sort_unstable();
    v[((v.len() - 1) as f64 * 0.9).round() as usize]
}

/// Coefficient of variation (standard deviation over mean); 0 for fewer than two values or a
/// zero mean.
pub fn cv(v: &[f64]) -> f64 {
    let n = v.len() as f64;
    if n < 2.0 {
        return 0.0;
    }
    let mean = v.iter().sum::<f64>() / n;
    if mean == 0.0 {
        return 0.0;
    }
    let var = v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n;
    var.sqrt() / mean
}

/// A byte count for people: `512 B`, `12.3 KiB`, `512.0 MiB`, `3.92 GiB`, `1.50 TiB`.
pub fn human_bytes(b: u64) -> String {
    const KIB: u64 = 1 << 10;
    const MIB: u64 = 1 << 20;
    const GIB: u64 = 1 << 30;
    const TIB: u64 = 1 << 40;
    let f = b as f64;
    if b >= TIB {
        format!("{:.2} TiB", f / TIB as f64)
    } else if b >= GIB {
        format!("{:.2} GiB", f / GIB as f64)
    } else if b >= MIB {
        format!("{:.1} MiB", f / MIB as f64)
    } else if b >= KIB {
        format!("{:.1} KiB", f / KIB as f64)
    } else {
        format!("{b} B")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn days_and_hours() {
        let t: Timestamp = "2026-03-08T23:59:59Z".parse().unwrap();
        assert_eq!(date_of_day(day_of(t)), "2026-03-08");
        assert_eq!(hour_of(t), 23);
        let before: Timestamp = "1969-12-31T23:00:00Z".parse().unwrap();
        assert_eq!(day_of(before), -1);
        assert_eq!(hour_of(before), 23);
    }

    #[test]
    fn percentile_and_spread() {
        assert_eq!(p90::<u64>(vec![]), 0);
        assert_eq!(p90((1..=10).collect::<Vec<u64>>()), 9);
        assert_eq!(p90(vec![5usize]), 5);
        assert_eq!(cv(&[1.0]), 0.0);
        assert_eq!(cv(&[2.0, 2.0, 2.0]), 0.0);
        assert!((cv(&[1.0, 3.0]) - 0.5).abs() < 1e-9);
    }

    #[test]
    fn byte_counts_for_people() {
        assert_eq!(human_bytes(512), "512 B");
        assert_eq!(human_bytes(12_595), "12.3 KiB");
        assert_eq!(human_bytes(512 << 20), "512.0 MiB");
        assert_eq!(human_bytes(4_209_067_950), "3.92 GiB");
        assert_eq!(human_bytes(3 << 39), "1.50 TiB");
    }
}
