//! A small deterministic generator for the crate's randomised tests (no dependency).

pub(crate) struct Lcg(pub u64);

impl Lcg {
    /// A number below `n`.
    pub fn next(&mut self, n: usize) -> usize {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((self.0 >> 33) % n as u64) as usize
    }

    /// `len` pieces drawn from `from`, joined.
    pub fn pick(&mut self, from: &[&str], len: usize) -> String {
        (0..len).map(|_| from[self.next(from.len())]).collect()
    }
}
