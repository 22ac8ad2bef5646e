//! The smallest template language the manifests need: `{{name}}` is replaced by a value, and
//! `{{#name}}…{{/name}}` (`{{^name}}…{{/name}}`) keeps its text only when the value is non-empty
//! (empty). A section tag alone on its line takes the whole line with it, so templates read as
//! the YAML they print. Values are inserted as they are: callers pass names already checked to
//! need no quoting.

use std::collections::BTreeMap;

/// What a template is rendered with: name → text.
pub type Values = BTreeMap<&'static str, String>;

/// Renders `template` with `values`.
///
/// # Panics
/// On a name without a value, or an unclosed section: both are mistakes in a template compiled
/// into this program, which the tests render in every variant.
pub fn render(template: &str, values: &Values) -> String {
    let mut out = String::with_capacity(template.len() + 1024);
    // Open sections: name, and whether their text is kept.
    let mut open: Vec<(&str, bool)> = Vec::new();
    for line in template.split_inclusive('\n') {
        if let Some(tag) = standalone_tag(line) {
            section(tag, values, &mut open);
            continue;
        }
        let mut rest = line;
        while let Some(start) = rest.find("{{") {
            let end = start
                + rest[start..]
                    .find("}}")
                    .unwrap_or_else(|| panic!("unclosed {{{{ in template line {line:?}"));
            let tag = &rest[start + 2..end];
            if open.iter().all(|(_, keep)| *keep) {
                out.push_str(&rest[..start]);
            }
            if tag.starts_with(['#', '^', '/']) {
                section(tag, values, &mut open);
            } else if open.iter().all(|(_, keep)| *keep) {
                out.push_str(value(tag, values));
            }
            rest = &rest[end + 2..];
        }
        if open.iter().all(|(_, keep)| *keep) {
            out.push_str(rest);
        }
    }
    assert!(open.is_empty(), "unclosed section {:?}", open.last());
    out
}

fn value<'a>(name: &str, values: &'a Values) -> &'a str {
    values
        .get(name)
        .unwrap_or_else(|| panic!("template value {name:?} is not set"))
}

/// The tag of a line that holds nothing but one section tag.
fn standalone_tag(line: &str) -> Option<&str> {
    let t = line.trim();
    let tag = t.strip_prefix("{{")?.strip_suffix("}}")?;
    (tag.starts_with(['#', '^', '/']) && !tag.contains("{{")).then_some(tag)
}

fn section<'t>(tag: &'t str, values: &Values, open: &mut Vec<(&'t str, bool)>) {
    let (kind, name) = tag.split_at(1);
    match kind {
        "#" => open.push((name, !value(name, values).is_empty())),
        "^" => open.push((name, value(name, values).is_empty())),
        _ => {
            let (was, _) = open
                .pop()
                .unwrap_or_else(|| panic!("{{{{/{name}}}}} closes no section"));
            assert_eq!(was, name, "section {was:?} closed by {name:?}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(pairs: &[(&'static str, &str)]) -> Values {
        pairs.iter().map(|(k, v)| (*k, (*v).to_owned())).collect()
    }

    #[test]
    fn substitutes_and_keeps_sections_by_value() {
        let t = "a: {{x}}\n{{#on}}\nshown: {{x}}\n{{/on}}\n{{^on}}\nhidden\n{{/on}}\nend {{#on}}yes{{/on}}{{^on}}no{{/on}}\n";
        assert_eq!(
            render(t, &values(&[("x", "1"), ("on", "y")])),
            "a: 1\nshown: 1\nend yes\n"
        );
        assert_eq!(
            render(t, &values(&[("x", "1"), ("on", "")])),
            "a: 1\nhidden\nend no\n"
        );
    }

    #[test]
    fn nested_sections() {
        let t = "{{#a}}\nA\n{{#b}}\nB\n{{/b}}\n{{/a}}\n";
        assert_eq!(render(t, &values(&[("a", "1"), ("b", "")])), "A\n");
        assert_eq!(render(t, &values(&[("a", ""), ("b", "1")])), "");
    }

    #[test]
    #[should_panic(expected = "not set")]
    fn a_missing_value_is_a_bug() {
        render("{{nope}}", &Values::new());
    }
}
