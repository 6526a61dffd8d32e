//! Containerfile syntax: logical lines (continuations, comments, the
//! `# escape=` directive), instructions with their `--flags`, stages, and the
//! word lexer that both unquotes and expands `$VAR` / `${VAR:-default}` the way
//! docker's shell lexer does (single quotes stop expansion, expanded values
//! are never split), and the here-documents (`<<EOF`) of RUN, COPY and ADD as
//! BuildKit reads them. Every instruction keeps its line, so errors can name it.

pub use super::heredoc::Heredoc;
use crate::error::{Error, Result};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Instruction {
    /// 1-based line where the instruction starts.
    pub line: usize,
    /// Upper case: RUN, COPY, ...
    pub keyword: String,
    /// Leading `--name=value` (or `--name`) flags, in order.
    pub flags: Vec<(String, Option<String>)>,
    /// The text after the keyword and flags, continuations joined.
    pub args: String,
    /// The here-documents the line opens (`<<EOF`), in order (RUN, COPY, ADD only).
    pub heredocs: Vec<Heredoc>,
}

impl Instruction {
    pub fn flag(&self, name: &str) -> Option<&str> {
        self.flags.iter().rev().find(|(n, _)| n == name).map(|(_, v)| v.as_deref().unwrap_or(""))
    }
    /// The instruction as written (continuations joined), for messages and history.
    pub fn text(&self) -> String {
        let mut s = self.keyword.clone();
        for (n, v) in &self.flags {
            s.push_str(&format!(" --{n}"));
            if let Some(v) = v {
                s.push_str(&format!("={v}"));
            }
        }
        if !self.args.is_empty() {
            s.push(' ');
            s.push_str(&self.args);
        }
        s
    }
}

#[derive(Clone, Debug)]
pub struct Stage {
    /// `FROM image AS name`
    pub name: Option<String>,
    pub from: Instruction,
    pub base: String,
    pub instructions: Vec<Instruction>,
}

#[derive(Clone, Debug)]
pub struct Containerfile {
    /// The file's name, for errors.
    pub file: String,
    /// ARGs before the first FROM (usable in FROM lines).
    pub global_args: Vec<Instruction>,
    pub stages: Vec<Stage>,
    pub escape: char,
}

impl Containerfile {
    /// `FILE:LINE: INSTRUCTION: what` — the shape of every build error.
    pub fn error(&self, i: &Instruction, what: impl std::fmt::Display) -> Error {
        error_at(&self.file, i, what)
    }
}

pub fn error_at(file: &str, i: &Instruction, what: impl std::fmt::Display) -> Error {
    let mut text = i.text();
    if text.chars().count() > 80 {
        text = text.chars().take(77).collect::<String>() + "...";
    }
    Error::Invalid(format!("{file}:{}: {text}: {what}", i.line))
}

const KEYWORDS: [&str; 18] = [
    "FROM",
    "RUN",
    "CMD",
    "ENTRYPOINT",
    "ENV",
    "ARG",
    "WORKDIR",
    "USER",
    "LABEL",
    "EXPOSE",
    "VOLUME",
    "STOPSIGNAL",
    "SHELL",
    "COPY",
    "ADD",
    "MAINTAINER",
    "ONBUILD",
    "HEALTHCHECK",
];

/// Parses a Containerfile's text; `file` names it in errors.
pub fn parse(file: &str, text: &str) -> Result<Containerfile> {
    let (escape, lines) = logical_lines(file, text)?;
    let mut cf = Containerfile { file: file.into(), global_args: vec![], stages: vec![], escape };
    for (line, l, heredocs) in lines {
        let mut i = instruction(line, &l);
        i.heredocs = heredocs;
        let err = |what: &str| error_at(file, &i, what);
        if !KEYWORDS.contains(&i.keyword.as_str()) {
            return Err(err("unknown instruction"));
        }
        if i.args.is_empty() && !matches!(i.keyword.as_str(), "RUN" | "CMD" | "ENTRYPOINT") {
            return Err(err("needs an argument"));
        }
        if i.keyword == "FROM" {
            let w: Vec<&str> = i.args.split_whitespace().collect();
            let name = match w.as_slice() {
                [_] => None,
                [_, as_, n] if as_.eq_ignore_ascii_case("as") => Some(n.to_string()),
                _ => return Err(err("expected FROM IMAGE [AS NAME]")),
            };
            if let Some(n) = &name {
                let ok = n.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
                    && n.chars().all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c));
                if !ok || cf.stages.iter().any(|s| s.name.as_ref() == Some(n)) {
                    return Err(err("bad or repeated stage name"));
                }
            }
            cf.stages.push(Stage {
                name: name.map(|n| n.to_ascii_lowercase()),
                base: w[0].to_string(),
                from: i.clone(),
                instructions: vec![],
            });
            continue;
        }
        match cf.stages.last_mut() {
            Some(s) => s.instructions.push(i),
            None if i.keyword == "ARG" => cf.global_args.push(i),
            None => return Err(err("only ARG may come before the first FROM")),
        }
    }
    if cf.stages.is_empty() {
        return Err(Error::Invalid(format!("{file}: no FROM instruction")));
    }
    Ok(cf)
}

/// One instruction: its first line, its text, its here-documents.
type Logical = (usize, String, Vec<Heredoc>);

/// Joins continuation lines and drops comments and blank lines; takes the
/// here-document bodies that RUN/COPY/ADD lines open. Returns the escape
/// character and the instructions.
fn logical_lines(file: &str, text: &str) -> Result<(char, Vec<Logical>)> {
    let mut escape = '\\';
    let mut out: Vec<Logical> = vec![];
    let mut cur: Option<(usize, String)> = None;
    let mut directives = true;
    let mut lines = text.lines().enumerate();
    while let Some((n, raw)) = lines.next() {
        let n = n + 1;
        let t = raw.trim();
        if directives {
            if let Some(d) = t.strip_prefix('#') {
                if let Some((k, v)) = d.split_once('=') {
                    if k.trim().eq_ignore_ascii_case("escape") {
                        escape = match v.trim() {
                            "\\" => '\\',
                            "`" => '`',
                            other => {
                                return Err(Error::Invalid(format!(
                                    "{file}:{n}: escape directive: {other:?} is neither \\ nor `"
                                )))
                            }
                        };
                        continue;
                    }
                    if k.trim().eq_ignore_ascii_case("syntax") || k.trim().eq_ignore_ascii_case("check") {
                        continue;
                    }
                }
            }
            directives = false;
        }
        if t.starts_with('#') || t.is_empty() {
            continue; // a blank line inside a continuation is skipped, as docker does
        }
        let (body, cont) = match raw.trim_end().strip_suffix(escape) {
            Some(b) => (b, true),
            None => (raw.trim_end(), false),
        };
        match &mut cur {
            Some((_, s)) => s.push_str(body),
            None => cur = Some((n, body.trim_start().to_string())),
        }
        if cont {
            continue;
        }
        let (line, text) = cur.take().unwrap();
        let mut heredocs = vec![];
        let kw = text.split_whitespace().next().unwrap_or("").to_ascii_uppercase();
        if matches!(kw.as_str(), "RUN" | "COPY" | "ADD") {
            for (name, chomp, expand) in text.split_whitespace().filter_map(Heredoc::marker) {
                let mut body = String::new();
                loop {
                    let Some((_, l)) = lines.next() else {
                        return Err(Error::Invalid(format!(
                            "{file}:{line}: {}: the here-document <<{name} has no closing {name} line",
                            text.trim()
                        )));
                    };
                    let end = if chomp { l.trim_start_matches('\t') } else { l };
                    if end == name {
                        break;
                    }
                    body.push_str(l);
                    body.push('\n');
                }
                heredocs.push(Heredoc { name, body, chomp, expand });
            }
        }
        out.push((line, text, heredocs));
    }
    if let Some((line, text)) = cur {
        out.push((line, text, vec![])); // a continuation at the end of the file ends there
    }
    Ok((escape, out))
}

fn instruction(line: usize, text: &str) -> Instruction {
    let (kw, mut rest) = text.split_once(char::is_whitespace).unwrap_or((text, ""));
    let mut flags = vec![];
    loop {
        rest = rest.trim_start();
        let Some(f) = rest.strip_prefix("--") else { break };
        let (word, after) = f.split_once(char::is_whitespace).unwrap_or((f, ""));
        match word.split_once('=') {
            Some((n, v)) => flags.push((n.to_string(), Some(v.to_string()))),
            None => flags.push((word.to_string(), None)),
        }
        rest = after;
    }
    Instruction { line, keyword: kw.to_ascii_uppercase(), flags, args: rest.trim().to_string(), heredocs: vec![] }
}

/// What variables expand to (None: unset).
pub type Vars<'a> = &'a dyn Fn(&str) -> Option<String>;

/// The JSON (exec) form `["a", "b"]`, if `args` is one.
pub fn json_array(args: &str) -> Option<Vec<String>> {
    let t = args.trim();
    if !t.starts_with('[') {
        return None;
    }
    serde_json::from_str(t).ok()
}

/// Splits `text` into words: whitespace separates them, quotes and the escape
/// character group and unquote, and with `vars` given `$NAME`, `${NAME}`,
/// `${NAME:-word}`, `${NAME:+word}` (and `-`/`+` without the colon) expand,
/// except inside single quotes.
pub fn words(text: &str, escape: char, vars: Option<Vars>) -> std::result::Result<Vec<String>, String> {
    let mut out = vec![];
    let mut w = String::new();
    let mut in_word = false;
    let mut chars = text.chars().peekable();
    let mut quote: Option<char> = None;
    while let Some(c) = chars.next() {
        match (quote, c) {
            (None, c) if c.is_whitespace() => {
                if in_word {
                    out.push(std::mem::take(&mut w));
                    in_word = false;
                }
            }
            (None, '\'' | '"') => {
                quote = Some(c);
                in_word = true;
            }
            (Some(q), c) if c == q => quote = None,
            (Some('\''), c) => w.push(c),
            (_, c) if c == escape => {
                in_word = true;
                match chars.next() {
                    // In double quotes the escape only escapes what would be special.
                    Some(n) if quote == Some('"') && !matches!(n, '"' | '$') && n != escape => {
                        w.push(c);
                        w.push(n);
                    }
                    Some(n) => w.push(n),
                    None => w.push(c),
                }
            }
            (_, '$') if vars.is_some() => {
                in_word = true;
                w.push_str(&expand_one(&mut chars, escape, vars.unwrap())?);
            }
            (_, c) => {
                in_word = true;
                w.push(c);
            }
        }
    }
    if quote.is_some() {
        return Err("unterminated quote".into());
    }
    if in_word {
        out.push(w);
    }
    Ok(out)
}

/// Expands every variable in `text` without splitting or unquoting (for the
/// forms docker expands verbatim, e.g. WORKDIR paths with spaces).
pub fn expand(text: &str, escape: char, vars: &dyn Fn(&str) -> Option<String>) -> std::result::Result<String, String> {
    let mut out = String::new();
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '$' => out.push_str(&expand_one(&mut chars, escape, vars)?),
            c if c == escape && chars.peek() == Some(&'$') => out.push(chars.next().unwrap()),
            c => out.push(c),
        }
    }
    Ok(out)
}

fn expand_one(
    chars: &mut std::iter::Peekable<std::str::Chars>,
    escape: char,
    vars: &dyn Fn(&str) -> Option<String>,
) -> std::result::Result<String, String> {
    let is_name = |c: char| c.is_ascii_alphanumeric() || c == '_';
    if chars.peek() == Some(&'{') {
        chars.next();
        let mut name = String::new();
        while let Some(&c) = chars.peek() {
            if !is_name(c) {
                break;
            }
            name.push(c);
            chars.next();
        }
        if name.is_empty() {
            return Err("bad substitution: ${ without a name".into());
        }
        let mut op = String::new();
        if chars.peek() == Some(&':') {
            op.push(chars.next().unwrap());
        }
        match chars.peek() {
            Some('}') if op.is_empty() => {
                chars.next();
                return Ok(vars(&name).unwrap_or_default());
            }
            Some('-' | '+') => op.push(chars.next().unwrap()),
            _ => return Err(format!("bad substitution in ${{{name}...}}: only :- and :+ are supported")),
        }
        // The word runs to the matching brace; it may itself hold variables.
        let mut word = String::new();
        let mut depth = 0;
        loop {
            match chars.next() {
                None => return Err(format!("missing }} in ${{{name}")),
                Some('}') if depth == 0 => break,
                Some(c) => {
                    if c == '{' {
                        depth += 1;
                    } else if c == '}' {
                        depth -= 1;
                    }
                    word.push(c);
                }
            }
        }
        let word = expand(&word, escape, vars)?;
        let v = vars(&name);
        let set = match op.as_str() {
            ":-" | ":+" => v.as_deref().is_some_and(|s| !s.is_empty()),
            _ => v.is_some(),
        };
        return Ok(match (op.ends_with('-'), set) {
            (true, true) => v.unwrap(),
            (true, false) => word,
            (false, true) => word,
            (false, false) => String::new(),
        });
    }
    let mut name = String::new();
    while let Some(&c) = chars.peek() {
        if !is_name(c) {
            break;
        }
        name.push(c);
        chars.next();
    }
    if name.is_empty() {
        return Ok("$".into());
    }
    Ok(vars(&name).unwrap_or_default())
}

/// `K=V` words (quotes removed, variables expanded); the legacy `K V...` form
/// (one pair, the rest of the line the value) when the first word has no `=`.
pub fn pairs(
    text: &str,
    escape: char,
    vars: &dyn Fn(&str) -> Option<String>,
) -> std::result::Result<Vec<(String, String)>, String> {
    let ws = words(text, escape, Some(vars))?;
    let Some(first) = ws.first() else { return Err("needs KEY=VALUE".into()) };
    if !first.contains('=') {
        let rest =
            text.trim_start()[text.trim_start().find(char::is_whitespace).unwrap_or(text.trim_start().len())..].trim();
        if rest.is_empty() {
            return Err(format!("{first}: needs a value"));
        }
        let v = words(rest, escape, Some(vars))?.join(" ");
        return Ok(vec![(first.clone(), v)]);
    }
    ws.into_iter()
        .map(|w| match w.split_once('=') {
            Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
            _ => Err(format!("{w}: expected KEY=VALUE")),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(n: &str) -> Option<String> {
        match n {
            "A" => Some("x y".into()),
            "E" => Some(String::new()),
            _ => None,
        }
    }

    #[test]
    fn lines_comments_continuations_flags() {
        let text = "# escape=\\\n# a comment\nARG V=1\nFROM busybox AS Build\n\nRUN echo a \\\n  # inside\n  && echo b\ncopy --from=x --chown=1:2 a /b\n";
        let cf = parse("Containerfile", text).unwrap();
        assert_eq!(cf.global_args.len(), 1);
        assert_eq!(cf.stages[0].name.as_deref(), Some("build"));
        let run = &cf.stages[0].instructions[0];
        assert_eq!((run.line, run.keyword.as_str(), run.args.as_str()), (6, "RUN", "echo a   && echo b"));
        let copy = &cf.stages[0].instructions[1];
        assert_eq!(copy.line, 9);
        assert_eq!(copy.flag("from"), Some("x"));
        assert_eq!(copy.flag("chown"), Some("1:2"));
        assert_eq!(copy.args, "a /b");
    }

    #[test]
    fn errors_name_file_line_instruction() {
        let e = parse("Cf", "FROM a\nRUN x\nFROBNICATE y\n").unwrap_err().to_string();
        assert_eq!(e, "Cf:3: FROBNICATE y: unknown instruction");
        let e = parse("Cf", "RUN x\n").unwrap_err().to_string();
        assert!(e.starts_with("Cf:1: RUN x:"), "{e}");
        let e = parse("Cf", "# nothing\n").unwrap_err().to_string();
        assert_eq!(e, "Cf: no FROM instruction");
        assert!(
            parse("Cf", "FROM a\nHEALTHCHECK CMD true\nONBUILD RUN x\n").is_ok(),
            "parsed (and ignored by the build)"
        );
        let e = parse("Cf", "FROM a\nRUN <<EOF\necho\n").unwrap_err().to_string();
        assert_eq!(e, "Cf:2: RUN <<EOF: the here-document <<EOF has no closing EOF line");
        let e = parse("Cf", "FROM a\nENV\n").unwrap_err().to_string();
        assert_eq!(e, "Cf:2: ENV: needs an argument");
        let e = parse("Cf", "FROM a AS b\nFROM c AS b\n").unwrap_err().to_string();
        assert!(e.starts_with("Cf:2: FROM c AS b:"), "{e}");
    }

    #[test]
    fn heredocs() {
        let text = "FROM a\nRUN <<EOF\n# not a comment\n\necho \\\nEOF\nCOPY <<-\"A\" <<B /d/\n\tx $V\n\tA\ny\nB\nRUN cat <<EOF >f\nEOF\nCMD <<EOF\n";
        let cf = parse("Cf", text).unwrap();
        let i = &cf.stages[0].instructions;
        assert_eq!(i.len(), 4);
        assert_eq!((i[0].line, i[0].args.as_str()), (2, "<<EOF"));
        let h = |name: &str, body: &str, chomp, expand| Heredoc { name: name.into(), body: body.into(), chomp, expand };
        assert_eq!(i[0].heredocs, vec![h("EOF", "# not a comment\n\necho \\\n", false, true)]);
        assert_eq!(i[1].heredocs, vec![h("A", "\tx $V\n", true, false), h("B", "y\n", false, true)]);
        assert_eq!(i[1].heredocs[0].content(), "x $V\n");
        assert_eq!((i[2].args.as_str(), i[2].heredocs.len()), ("cat <<EOF >f", 1));
        assert!(i[3].heredocs.is_empty(), "only RUN, COPY and ADD take here-documents");
        assert_eq!(Heredoc::marker("2<<'X'"), Some(("X".into(), false, false)));
        assert_eq!(Heredoc::marker("a<<X"), None);
        assert_eq!(Heredoc::marker("<<"), None);
    }

    #[test]
    fn backtick_escape() {
        let cf = parse("Cf", "# escape=`\nFROM a\nRUN a `\n b\n").unwrap();
        assert_eq!(cf.escape, '`');
        assert_eq!(cf.stages[0].instructions[0].args, "a  b");
    }

    #[test]
    fn word_lexer() {
        let v: &dyn Fn(&str) -> Option<String> = &vars;
        assert_eq!(
            words(r#"a "b c" 'd $A' $A ${A}z"#, '\\', Some(v)).unwrap(),
            vec!["a", "b c", "d $A", "x y", "x yz"]
        );
        assert_eq!(
            words("${N:-def} ${E:-e} ${E-e}x ${A:+set} ${N:+set}-", '\\', Some(v)).unwrap(),
            vec!["def", "e", "x", "set", "-"]
        );
        assert_eq!(words(r#"a\ b "q\"q" \$A"#, '\\', Some(v)).unwrap(), vec!["a b", "q\"q", "$A"]);
        assert!(words("'open", '\\', Some(v)).is_err());
        assert!(words("${A:?x}", '\\', Some(v)).is_err());
        assert_eq!(expand("/w/$A/${N:-d}", '\\', v).unwrap(), "/w/x y/d");
    }

    #[test]
    fn env_pairs_and_json() {
        let v: &dyn Fn(&str) -> Option<String> = &vars;
        assert_eq!(
            pairs(r#"K=1 L="two words" M=$A"#, '\\', v).unwrap(),
            vec![("K".into(), "1".into()), ("L".into(), "two words".into()), ("M".into(), "x y".into())]
        );
        assert_eq!(pairs("K a b  c", '\\', v).unwrap(), vec![("K".into(), "a b c".into())]);
        assert!(pairs("=x", '\\', v).is_err());
        assert_eq!(json_array(r#"["sh", "-c", "x"]"#), Some(vec!["sh".into(), "-c".into(), "x".into()]));
        assert_eq!(json_array("echo [x]"), None);
        assert_eq!(json_array("[not json"), None);
    }
}
