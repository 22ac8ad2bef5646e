//! Keeps the documents' tables true to the program: README.md's metric catalogue matches
//! [`CATALOGUE`], docs/configuration.md's flag table matches clap's flags and environment
//! variables, the test command README.md tells newcomers to run is the one `.ci/run` runs, and
//! manifests/README.md matches the flags of `certs` and `manifests`. (tests/docs.rs re-runs the
//! documents' console blocks.)
//!
//! Plain text parsing on purpose: the documents are Markdown written by people, and a failure
//! here should name the row to fix.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use clap::CommandFactory;
use flux_metrics::cli::Cli;
use flux_metrics::source::catalogue::CATALOGUE;

fn read(relative: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(relative);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

/// The lines of the section of `markdown` headed `<title>` (at any level, `## Tests` or
/// `### Tests`), up to the next heading of the same or a higher level.
fn section<'a>(markdown: &'a str, title: &str) -> Vec<&'a str> {
    let level = |l: &str| {
        let hashes = l.len() - l.trim_start_matches('#').len();
        (hashes > 0 && l[hashes..].starts_with(' ')).then_some(hashes)
    };
    let mut lines = markdown
        .lines()
        .skip_while(|l| !(level(l).is_some() && l.trim_start_matches('#').trim() == title));
    let heading = lines
        .next()
        .unwrap_or_else(|| panic!("no `{title}` section"));
    let depth = level(heading).expect("a heading");
    lines
        .take_while(|l| level(l).is_none_or(|d| d > depth))
        .collect()
}

/// The body rows of the first Markdown table in `lines`, as trimmed cells (header and
/// separator rows dropped).
fn table(lines: &[&str]) -> Vec<Vec<String>> {
    let rows: Vec<Vec<String>> = lines
        .iter()
        .skip_while(|l| !l.trim_start().starts_with('|'))
        .take_while(|l| l.trim_start().starts_with('|'))
        .map(|l| {
            let inner = l.trim().trim_start_matches('|').trim_end_matches('|');
            inner.split('|').map(|c| c.trim().to_owned()).collect()
        })
        .collect();
    assert!(rows.len() > 2, "no Markdown table found");
    rows.into_iter().skip(2).collect()
}

/// `` `name` `` → `name`.
fn unquote(cell: &str) -> &str {
    cell.trim().trim_matches('`')
}

#[test]
fn catalogue_table_lists_every_metric_with_its_exact_help() {
    let readme = read("README.md");
    let rows = table(&section(&readme, "Metric catalogue"));
    let mut documented = BTreeMap::new();
    for row in &rows {
        assert!(row.len() >= 3, "catalogue row with too few cells: {row:?}");
        let name = unquote(&row[0]).to_owned();
        let previous = documented.insert(name.clone(), (row[1].clone(), row[2].clone()));
        assert!(previous.is_none(), "metric {name} is listed twice");
    }
    for m in CATALOGUE {
        let Some((queue, help)) = documented.remove(m.name) else {
            panic!("README catalogue table lacks metric {}", m.name);
        };
        assert_eq!(
            help, m.help,
            "help text of {} differs from CATALOGUE",
            m.name
        );
        let expected = if m.has_queue_label() { "yes" } else { "no" };
        assert_eq!(queue, expected, "`queue` label column of {}", m.name);
    }
    assert!(
        documented.is_empty(),
        "README catalogue table lists metrics the program lacks: {:?}",
        documented.keys().collect::<Vec<_>>()
    );
}

/// One row of the configuration table.
struct FlagRow {
    commands: String,
    env: String,
    default: String,
}

/// The long flag named in a Flag cell such as `` `--output`, `-o` ``.
fn long_flag(cell: &str) -> Option<String> {
    cell.split('`')
        .map(str::trim)
        .find_map(|s| s.strip_prefix("--"))
        .map(|s| s.split([' ', '=']).next().unwrap_or_default().to_owned())
}

#[test]
fn configuration_table_matches_every_flag_and_env_var() {
    let doc = read("docs/configuration.md");
    let rows = table(&section(&doc, "Flags and environment variables"));
    let mut documented = BTreeMap::new();
    for row in &rows {
        assert!(
            row.len() >= 4,
            "configuration row with too few cells: {row:?}"
        );
        let flag = long_flag(&row[0]).unwrap_or_else(|| panic!("no --flag in row {row:?}"));
        let entry = FlagRow {
            commands: row[1].clone(),
            env: unquote(&row[2]).to_owned(),
            default: unquote(&row[3]).to_owned(),
        };
        assert!(
            documented.insert(flag.clone(), entry).is_none(),
            "--{flag} is listed twice"
        );
    }

    let mut cli = Cli::command();
    // Building propagates the global logging flags into each subcommand, as `--help` shows them.
    cli.build();
    let mut seen = BTreeSet::new();
    for sub in ["start", "get"] {
        let cmd = cli
            .find_subcommand(sub)
            .unwrap_or_else(|| panic!("no `{sub}` subcommand"));
        for arg in cmd.get_arguments() {
            let Some(long) = arg.get_long() else { continue };
            if matches!(long, "help" | "version") {
                continue;
            }
            seen.insert(long.to_owned());
            let row = documented.get(long).unwrap_or_else(|| {
                panic!("docs/configuration.md flag table lacks --{long} of `{sub}`")
            });
            assert!(
                row.commands.contains(&format!("`{sub}`")),
                "--{long}: the Commands cell {:?} should name `{sub}`",
                row.commands
            );
            let env = arg.get_env().map(|e| e.to_string_lossy().into_owned());
            match env {
                Some(env) => assert_eq!(row.env, env, "environment variable of --{long}"),
                None => assert_eq!(row.env, "—", "--{long} has no environment variable"),
            }
            // Switches have an implicit "false" that `--help` does not show.
            if arg.get_action().takes_values() && !arg.get_default_values().is_empty() {
                let defaults: Vec<String> = arg
                    .get_default_values()
                    .iter()
                    .map(|d| d.to_string_lossy().into_owned())
                    .collect();
                assert_eq!(row.default, defaults.join(","), "default of --{long}");
            }
        }
    }
    let extra: Vec<_> = documented.keys().filter(|f| !seen.contains(*f)).collect();
    assert!(
        extra.is_empty(),
        "docs/configuration.md flag table lists flags that `start` and `get` lack: {extra:?}"
    );
}

/// The words of a shell command line up to the first redirection, pipe or list operator.
fn command_words(line: &str) -> Vec<&str> {
    line.split_whitespace()
        .take_while(|w| {
            !(w.starts_with('|')
                || w.starts_with('>')
                || w.contains(">&")
                || *w == "&&"
                || *w == ";")
        })
        .collect()
}

#[test]
fn readme_test_command_is_the_one_ci_runs() {
    let readme = read("README.md");
    let tests = section(&readme, "Tests");
    let readme_cmd = tests
        .iter()
        .map(|l| l.trim())
        .find(|l| l.starts_with("cargo test"))
        .expect("the Tests section of README.md shows no `cargo test` command line");
    let ci = read(".ci/run");
    let ci_cmds: Vec<Vec<&str>> = ci
        .lines()
        .map(str::trim)
        .filter(|l| l.starts_with("cargo test"))
        .map(command_words)
        .collect();
    assert!(!ci_cmds.is_empty(), ".ci/run runs no `cargo test`");
    for words in ci_cmds {
        assert_eq!(
            words.join(" "),
            readme_cmd,
            "README.md tells newcomers to run another test command than .ci/run"
        );
    }
}

/// The long flags of subcommand `sub` that are its own (not the global logging flags, which the
/// flag table of docs/configuration.md documents), with their defaults.
fn own_flags(sub: &str) -> BTreeMap<String, Option<String>> {
    let mut cli = Cli::command();
    cli.build();
    let global: BTreeSet<String> = cli
        .get_arguments()
        .filter_map(|a| a.get_long().map(str::to_owned))
        .collect();
    let cmd = cli
        .find_subcommand(sub)
        .unwrap_or_else(|| panic!("no `{sub}` subcommand"));
    cmd.get_arguments()
        .filter_map(|arg| {
            let long = arg.get_long()?;
            if matches!(long, "help" | "version") || global.contains(long) {
                return None;
            }
            let default = (arg.get_action().takes_values() && !arg.get_default_values().is_empty())
                .then(|| {
                    arg.get_default_values()
                        .iter()
                        .map(|d| d.to_string_lossy().into_owned())
                        .collect::<Vec<_>>()
                        .join(",")
                });
            Some((long.to_owned(), default))
        })
        .collect()
}

#[test]
fn manifests_readme_flag_table_matches_the_manifests_command() {
    let readme = read("manifests/README.md");
    let rows = table(&section(&readme, "`flux-metrics-api manifests`"));
    let mut documented = BTreeMap::new();
    for row in &rows {
        assert!(
            row.len() >= 3,
            "manifests flag row with too few cells: {row:?}"
        );
        let flag = long_flag(&row[0]).unwrap_or_else(|| panic!("no --flag in row {row:?}"));
        let previous = documented.insert(flag.clone(), unquote(&row[1]).to_owned());
        assert!(previous.is_none(), "--{flag} is listed twice");
    }
    for (flag, default) in own_flags("manifests") {
        let Some(cell) = documented.remove(&flag) else {
            panic!("manifests/README.md flag table lacks --{flag} of `manifests`");
        };
        match default {
            Some(d) => assert_eq!(cell, d, "default of --{flag} in manifests/README.md"),
            None => assert!(
                matches!(cell.as_str(), "–" | "—"),
                "--{flag} has no default, manifests/README.md says {cell:?}"
            ),
        }
    }
    assert!(
        documented.is_empty(),
        "manifests/README.md lists flags that `manifests` lacks: {:?}",
        documented.keys().collect::<Vec<_>>()
    );
}

#[test]
fn manifests_readme_usage_lines_name_every_flag() {
    let readme = read("manifests/README.md");
    for sub in ["certs", "manifests"] {
        let lines = section(&readme, &format!("`flux-metrics-api {sub}`"));
        let usage: String = lines
            .iter()
            .skip_while(|l| !l.starts_with("$ flux-metrics-api"))
            .take_while(|l| !l.starts_with("```"))
            .copied()
            .collect::<Vec<_>>()
            .join(" ");
        assert!(
            usage.starts_with(&format!("$ flux-metrics-api {sub}")),
            "the `flux-metrics-api {sub}` section of manifests/README.md shows no usage line"
        );
        for flag in own_flags(sub).keys() {
            let word = format!("--{flag}");
            assert!(
                usage
                    .split(|c: char| c.is_whitespace() || "[]()|".contains(c))
                    .any(|w| w == word),
                "the usage line of `{sub}` in manifests/README.md lacks {word}"
            );
        }
    }
}
