//! Output formats: TAP (one stream per runtime, ending with the plain summary line),
//! a case x runtime table, or JSON for other tools.

use serde_json::json;

/// What a case came to on one runtime.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Pass,
    Fail(String),
    Skip(String),
}

/// One case's results, one per runtime in the order given on the command line.
pub struct Row {
    pub name: String,
    pub spec: &'static str,
    pub results: Vec<Outcome>,
}

/// "N passed, N failed, N skipped" for runtime column `col`.
pub fn summary(rows: &[Row], col: usize) -> String {
    let count = |f: fn(&Outcome) -> bool| rows.iter().filter(|r| f(&r.results[col])).count();
    format!(
        "{} passed, {} failed, {} skipped",
        count(|o| *o == Outcome::Pass),
        count(|o| matches!(o, Outcome::Fail(_))),
        count(|o| matches!(o, Outcome::Skip(_)))
    )
}

pub fn tap(rows: &[Row], runtimes: &[String]) -> String {
    let mut s = String::new();
    for (col, rt) in runtimes.iter().enumerate() {
        s += &format!("TAP version 13\n# runtime: {rt}\n1..{}\n", rows.len());
        for (i, r) in rows.iter().enumerate() {
            let n = i + 1;
            match &r.results[col] {
                Outcome::Pass => s += &format!("ok {n} - {} # {}\n", r.name, r.spec),
                Outcome::Skip(why) => s += &format!("ok {n} - {} # SKIP {why}\n", r.name),
                Outcome::Fail(why) => {
                    s += &format!("not ok {n} - {}\n", r.name);
                    s += &format!("  # spec: {}\n", r.spec);
                    for l in why.lines() {
                        s += &format!("  # {l}\n");
                    }
                }
            }
        }
        s += &summary(rows, col);
        s += "\n";
    }
    s
}

fn short(o: &Outcome) -> String {
    match o {
        Outcome::Pass => "ok".into(),
        Outcome::Fail(_) => "FAIL".into(),
        Outcome::Skip(_) => "skip".into(),
    }
}

/// A case x runtime table; rows whose results differ are marked with `*`, and every
/// failure or skip reason is listed below the table.
pub fn table(rows: &[Row], runtimes: &[String]) -> String {
    let names: Vec<String> = runtimes.iter().map(|r| r.rsplit('/').next().unwrap_or(r).to_string()).collect();
    let w = rows.iter().map(|r| r.name.len()).max().unwrap_or(4).max(4);
    let mut s = format!("  {:w$}", "case");
    for n in &names {
        s += &format!(" | {n:8}");
    }
    s += "\n";
    for r in rows {
        let differs = r.results.iter().any(|o| short(o) != short(&r.results[0]));
        s += &format!("{} {:w$}", if differs { '*' } else { ' ' }, r.name);
        for o in &r.results {
            s += &format!(" | {:8}", short(o));
        }
        s += "\n";
    }
    for (col, n) in names.iter().enumerate() {
        s += &format!("\n{n}: {}\n", summary(rows, col));
        for r in rows {
            if let Outcome::Fail(w) | Outcome::Skip(w) = &r.results[col] {
                s += &format!("  {} {}: {}\n", short(&r.results[col]), r.name, w.lines().next().unwrap_or(""));
            }
        }
    }
    s
}

pub fn json(rows: &[Row], runtimes: &[String]) -> String {
    let v: Vec<_> = rows
        .iter()
        .map(|r| {
            let res: serde_json::Map<_, _> = runtimes
                .iter()
                .zip(&r.results)
                .map(|(rt, o)| {
                    (
                        rt.clone(),
                        match o {
                            Outcome::Pass => json!({ "result": "ok" }),
                            Outcome::Fail(w) => json!({ "result": "not ok", "reason": w }),
                            Outcome::Skip(w) => json!({ "result": "skip", "reason": w }),
                        },
                    )
                })
                .collect();
            json!({ "case": r.name, "spec": r.spec, "results": res })
        })
        .collect();
    serde_json::to_string_pretty(&v).unwrap()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tap_counts_skips_apart_and_ends_with_summary() {
        let rows = vec![
            Row { name: "a/x".into(), spec: "s", results: vec![Outcome::Pass, Outcome::Fail("why".into())] },
            Row { name: "a/y".into(), spec: "s", results: vec![Outcome::Skip("no host".into()), Outcome::Pass] },
        ];
        let t = tap(&rows, &["r1".into(), "r2".into()]);
        assert!(t.contains("ok 2 - a/y # SKIP no host"));
        assert!(t.contains("not ok 1 - a/x\n  # spec: s\n  # why"));
        assert!(t.trim_end().ends_with("1 passed, 1 failed, 0 skipped"));
        assert!(t.contains("1 passed, 0 failed, 1 skipped\n"));
        let tb = table(&rows, &["/usr/bin/r1".into(), "r2".into()]);
        assert!(tb.contains("* a/x"), "{tb}");
    }
}
