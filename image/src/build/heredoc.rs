//! Here-documents (`<<EOF` ... `EOF`) as BuildKit's Dockerfile parser reads
//! them: which words open one, and the body with `<<-`'s tabs removed. The
//! parser takes the bodies; RUN and COPY/ADD decide what they mean.

/// `<<NAME` ... `NAME`: a body that follows the instruction's line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Heredoc {
    pub name: String,
    /// The body as written, each line ending in a newline.
    pub body: String,
    /// `<<-NAME`: leading tabs of the body's lines are removed (see `content`).
    pub chomp: bool,
    /// An unquoted name: COPY/ADD expand variables in the body (the shell does for RUN).
    pub expand: bool,
}

impl Heredoc {
    /// The body with `<<-`'s leading tabs removed.
    pub fn content(&self) -> String {
        if !self.chomp {
            return self.body.clone();
        }
        self.body.split_inclusive('\n').map(|l| l.trim_start_matches('\t')).collect()
    }

    /// `<<NAME`, `<<-NAME`, `<<"NAME"`, `<<'NAME'` (a leading fd number allowed, as in
    /// `2<<EOF`): (name, chomp, expand). Only whole words are markers, as in BuildKit.
    pub fn marker(word: &str) -> Option<(String, bool, bool)> {
        let rest = word.trim_start_matches(|c: char| c.is_ascii_digit()).strip_prefix("<<")?;
        let (chomp, rest) = match rest.strip_prefix('-') {
            Some(r) => (true, r),
            None => (false, rest),
        };
        let quoted = rest.len() >= 2
            && ((rest.starts_with('"') && rest.ends_with('"')) || (rest.starts_with('\'') && rest.ends_with('\'')));
        let name = if quoted { &rest[1..rest.len() - 1] } else { rest };
        if name.is_empty() || name.contains(['<', '"', '\'', '>', '|', '&', ';']) {
            return None;
        }
        Some((name.to_string(), chomp, !quoted))
    }
}
