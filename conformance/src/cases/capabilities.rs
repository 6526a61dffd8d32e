pub const CASES: &[super::Entry] = &[];
