//! SMF manifests: structure checked against the rules of the illumos
//! `service_bundle` DTD (version 1), encoded here so builds do not need
//! the DTD on disk, and every `exec` checked against the proto.
//!
//! The element table below transcribes the DTD's content models and
//! attribute lists; a test cross-checks our verdicts with `xmllint
//! --dtdvalid` on the reference DTD.

use std::collections::{BTreeSet, HashMap};
use std::path::Path;
use std::sync::OnceLock;

/// How an attribute must appear.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Presence {
    Required,
    Optional,
}

#[derive(Debug, Clone)]
struct AttrRule {
    name: &'static str,
    presence: Presence,
    /// `None` for CDATA; otherwise the allowed values.
    values: Option<Vec<&'static str>>,
}

#[derive(Debug, Clone)]
enum Particle {
    Name(String, Occur),
    Seq(Vec<Particle>, Occur),
    Choice(Vec<Particle>, Occur),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Occur {
    One,
    Opt,
    Star,
    Plus,
}

#[derive(Debug, Clone)]
enum Content {
    Empty,
    Any,
    /// `(#PCDATA)`: text only.
    Text,
    Children(Particle),
}

#[derive(Debug)]
struct ElementRule {
    content: Content,
    attrs: Vec<AttrRule>,
}

const PROP_TYPES: &str = "count|integer|opaque|host|hostname|net_address_v4|net_address_v6|time|astring|ustring|boolean|fmri|uri";
const BOOL: &str = "true|false";
const GROUPING: &str = "require_all|require_any|exclude_all|optional_all";
const RESTART_ON: &str = "error|restart|refresh|none";

/// (element, content model, attributes). Attribute specs are
/// `name:R` (required CDATA), `name:O` (optional CDATA), `name:R=a|b`
/// (required enumeration), `name:O=a|b` (enumeration with a default).
fn table() -> Vec<(&'static str, &'static str, Vec<String>)> {
    let value_list = "(value_node+)";
    let mut t: Vec<(&'static str, &'static str, Vec<String>)> = vec![
        (
            "service_bundle",
            "(service_bundle*|service*|xi:include*)",
            vec!["type:R".into(), "name:R".into()],
        ),
        (
            "service",
            "(create_default_instance?,single_instance?,restarter?,dependency*,dependent*,method_context?,exec_method*,property_group*,instance*,stability?,template?)",
            vec![
                "name:R".into(),
                "version:R".into(),
                "type:R=service|restarter|milestone".into(),
            ],
        ),
        (
            "instance",
            "(restarter?,dependency*,dependent*,method_context?,exec_method*,property_group*,template?)",
            vec!["name:R".into(), format!("enabled:R={BOOL}")],
        ),
        (
            "create_default_instance",
            "EMPTY",
            vec![format!("enabled:R={BOOL}")],
        ),
        ("single_instance", "EMPTY", vec![]),
        ("restarter", "(service_fmri)", vec![]),
        ("service_fmri", "EMPTY", vec!["value:R".into()]),
        (
            "stability",
            "EMPTY",
            vec!["value:R=Standard|Stable|Evolving|Unstable|External|Obsolete".into()],
        ),
        (
            "dependency",
            "(service_fmri*,stability?,(propval|property)*)",
            vec![
                "name:R".into(),
                format!("grouping:R={GROUPING}"),
                format!("restart_on:R={RESTART_ON}"),
                "type:R".into(),
                format!("delete:O={BOOL}"),
            ],
        ),
        (
            "dependent",
            "(service_fmri,stability?,(propval|property)*)",
            vec![
                "name:R".into(),
                format!("grouping:R={GROUPING}"),
                format!("restart_on:R={RESTART_ON}"),
                format!("delete:O={BOOL}"),
                format!("override:O={BOOL}"),
            ],
        ),
        ("envvar", "EMPTY", vec!["name:R".into(), "value:R".into()]),
        ("method_environment", "(envvar+)", vec![]),
        ("method_profile", "EMPTY", vec!["name:R".into()]),
        (
            "method_credential",
            "EMPTY",
            vec![
                "user:R".into(),
                "group:O".into(),
                "supp_groups:O".into(),
                "privileges:O".into(),
                "limit_privileges:O".into(),
            ],
        ),
        (
            "method_context",
            "((method_profile|method_credential)?,method_environment?)",
            vec![
                "working_directory:O".into(),
                "project:O".into(),
                "resource_pool:O".into(),
            ],
        ),
        (
            "exec_method",
            "(method_context?,stability?,(propval|property)*)",
            vec![
                "type:R=method|monitor".into(),
                "name:R".into(),
                "exec:R".into(),
                "timeout_seconds:R".into(),
                format!("delete:O={BOOL}"),
            ],
        ),
        (
            "property_group",
            "(stability?,(propval|property)*)",
            vec!["name:R".into(), "type:R".into(), format!("delete:O={BOOL}")],
        ),
        (
            "propval",
            "EMPTY",
            vec![
                "name:R".into(),
                format!("type:R={PROP_TYPES}"),
                "value:R".into(),
                format!("override:O={BOOL}"),
            ],
        ),
        (
            "property",
            "(count_list|integer_list|opaque_list|host_list|hostname_list|net_address_v4_list|net_address_v6_list|time_list|astring_list|ustring_list|boolean_list|fmri_list|uri_list)?",
            vec![
                "name:R".into(),
                format!("type:R={PROP_TYPES}"),
                format!("override:O={BOOL}"),
            ],
        ),
        ("value_node", "EMPTY", vec!["value:R".into()]),
        ("doc_link", "EMPTY", vec!["name:R".into(), "uri:R".into()]),
        (
            "manpage",
            "EMPTY",
            vec!["title:R".into(), "section:R".into(), "manpath:O".into()],
        ),
        ("documentation", "(doc_link|manpage)*", vec![]),
        ("loctext", "#PCDATA", vec!["xml:lang:R".into()]),
        ("description", "(loctext+)", vec![]),
        ("common_name", "(loctext+)", vec![]),
        ("units", "(loctext+)", vec![]),
        (
            "visibility",
            "EMPTY",
            vec!["value:R=hidden|readonly|readwrite".into()],
        ),
        (
            "value",
            "(common_name?,description?)",
            vec!["name:R".into()],
        ),
        ("values", "(value+)", vec![]),
        ("cardinality", "EMPTY", vec!["min:O".into(), "max:O".into()]),
        ("internal_separators", "#PCDATA", vec![]),
        ("range", "EMPTY", vec!["min:R".into(), "max:R".into()]),
        ("constraints", "(value*,range*)", vec![]),
        (
            "include_values",
            "EMPTY",
            vec!["type:R=constraints|values".into()],
        ),
        ("choices", "(value*,range*,include_values*)", vec![]),
        (
            "prop_pattern",
            "(common_name?,description?,units?,visibility?,cardinality?,internal_separators?,values?,constraints?,choices?)",
            vec![
                "name:R".into(),
                format!("type:O={PROP_TYPES}"),
                format!("required:O={BOOL}"),
            ],
        ),
        (
            "pg_pattern",
            "(common_name?,description?,prop_pattern*)",
            vec![
                "name:O".into(),
                "type:O".into(),
                format!("required:O={BOOL}"),
                "target:O=this|instance|delegate|all".into(),
            ],
        ),
        (
            "template",
            "(common_name,description?,documentation?,pg_pattern*)",
            vec![],
        ),
        (
            "xi:include",
            "(xi:fallback)",
            vec![
                "href:R".into(),
                "parse:O=xml|text".into(),
                "encoding:O".into(),
                "xmlns:xi:O".into(),
            ],
        ),
        ("xi:fallback", "ANY", vec!["xmlns:xi:O".into()]),
    ];
    for list in [
        "count_list",
        "integer_list",
        "opaque_list",
        "host_list",
        "hostname_list",
        "net_address_v4_list",
        "net_address_v6_list",
        "time_list",
        "astring_list",
        "ustring_list",
        "boolean_list",
        "fmri_list",
        "uri_list",
    ] {
        t.push((list, value_list, vec![]));
    }
    t
}

fn rules() -> &'static HashMap<&'static str, ElementRule> {
    static RULES: OnceLock<HashMap<&'static str, ElementRule>> = OnceLock::new();
    RULES.get_or_init(|| {
        table()
            .into_iter()
            .map(|(name, model, attrs)| {
                let content = match model {
                    "EMPTY" => Content::Empty,
                    "ANY" => Content::Any,
                    "#PCDATA" => Content::Text,
                    m => Content::Children(parse_model(m)),
                };
                let attrs = attrs.iter().map(|a| parse_attr(a)).collect();
                (name, ElementRule { content, attrs })
            })
            .collect()
    })
}

fn parse_attr(spec: &str) -> AttrRule {
    let (head, values) = match spec.split_once('=') {
        Some((h, v)) => (h, Some(v.split('|').map(leak).collect())),
        None => (spec, None),
    };
    let (name, presence) = match head.rsplit_once(':') {
        Some((n, "R")) => (n, Presence::Required),
        Some((n, _)) => (n, Presence::Optional),
        None => (head, Presence::Optional),
    };
    AttrRule {
        name: leak(name),
        presence,
        values,
    }
}

/// The table is built once per process; leaking its few strings keeps the
/// rules `'static` without a second copy of every name.
fn leak(s: &str) -> &'static str {
    Box::leak(s.to_string().into_boxed_str())
}

/// Parse a DTD content model such as `(a?,(b|c)*)`.
fn parse_model(s: &str) -> Particle {
    let chars: Vec<char> = s.chars().filter(|c| !c.is_whitespace()).collect();
    let mut pos = 0;
    parse_particle(&chars, &mut pos)
}

fn parse_particle(c: &[char], pos: &mut usize) -> Particle {
    if c.get(*pos) == Some(&'(') {
        *pos += 1;
        let mut items = vec![parse_particle(c, pos)];
        let mut sep = None;
        while let Some(&ch) = c.get(*pos) {
            match ch {
                ',' | '|' => {
                    sep = Some(ch);
                    *pos += 1;
                    items.push(parse_particle(c, pos));
                }
                ')' => {
                    *pos += 1;
                    break;
                }
                _ => break,
            }
        }
        let occ = parse_occur(c, pos);
        if sep == Some('|') {
            Particle::Choice(items, occ)
        } else {
            Particle::Seq(items, occ)
        }
    } else {
        let start = *pos;
        while let Some(&ch) = c.get(*pos) {
            if ch.is_alphanumeric() || ch == '_' || ch == ':' {
                *pos += 1;
            } else {
                break;
            }
        }
        let name: String = c[start..*pos].iter().collect();
        Particle::Name(name, parse_occur(c, pos))
    }
}

fn parse_occur(c: &[char], pos: &mut usize) -> Occur {
    let occ = match c.get(*pos) {
        Some('?') => Occur::Opt,
        Some('*') => Occur::Star,
        Some('+') => Occur::Plus,
        _ => return Occur::One,
    };
    *pos += 1;
    occ
}

/// Every position the particle can end at when matching from `start`.
fn ends(p: &Particle, kids: &[String], start: usize) -> BTreeSet<usize> {
    let occ = match p {
        Particle::Name(_, o) | Particle::Seq(_, o) | Particle::Choice(_, o) => *o,
    };
    let repeat = |first: BTreeSet<usize>| {
        let mut all = first.clone();
        let mut frontier = first;
        while !frontier.is_empty() {
            let next: BTreeSet<usize> = frontier
                .iter()
                .flat_map(|&s| once(p, kids, s))
                .filter(|s| !all.contains(s))
                .collect();
            all.extend(next.iter().copied());
            frontier = next;
        }
        all
    };
    match occ {
        Occur::One => once(p, kids, start),
        Occur::Opt => {
            let mut s = once(p, kids, start);
            s.insert(start);
            s
        }
        Occur::Plus => repeat(once(p, kids, start)),
        Occur::Star => repeat(BTreeSet::from([start])),
    }
}

/// End positions of exactly one occurrence of `p`.
fn once(p: &Particle, kids: &[String], start: usize) -> BTreeSet<usize> {
    match p {
        Particle::Name(n, _) => {
            if kids.get(start) == Some(n) {
                BTreeSet::from([start + 1])
            } else {
                BTreeSet::new()
            }
        }
        Particle::Seq(items, _) => {
            let mut cur = BTreeSet::from([start]);
            for item in items {
                cur = cur.iter().flat_map(|&s| ends(item, kids, s)).collect();
            }
            cur
        }
        Particle::Choice(items, _) => items.iter().flat_map(|i| ends(i, kids, start)).collect(),
    }
}

fn qualified_name(node: roxmltree::Node<'_, '_>) -> String {
    let tag = node.tag_name();
    match tag.namespace() {
        Some("http://www.w3.org/2001/XInclude") => format!("xi:{}", tag.name()),
        _ => tag.name().to_string(),
    }
}

fn attr_name(a: &roxmltree::Attribute<'_, '_>) -> String {
    match a.namespace() {
        Some("http://www.w3.org/XML/1998/namespace") => format!("xml:{}", a.name()),
        _ => a.name().to_string(),
    }
}

/// Check an SMF manifest against the DTD rules. The error names the
/// element (by line) and what was expected.
pub fn check_dtd(text: &str) -> Result<roxmltree::Document<'_>, String> {
    let opts = roxmltree::ParsingOptions {
        allow_dtd: true,
        ..Default::default()
    };
    let doc = roxmltree::Document::parse_with_options(text, opts)
        .map_err(|e| format!("not well-formed XML: {e}"))?;
    let root = doc.root_element();
    if root.tag_name().name() != "service_bundle" {
        return Err(format!(
            "root element is <{}>, expected <service_bundle>",
            root.tag_name().name()
        ));
    }
    check_element(&doc, root)?;
    Ok(doc)
}

fn check_element(
    doc: &roxmltree::Document<'_>,
    node: roxmltree::Node<'_, '_>,
) -> Result<(), String> {
    let name = qualified_name(node);
    let line = doc.text_pos_at(node.range().start).row;
    let at = |msg: String| format!("line {line}: <{name}>: {msg}");
    let rule = rules()
        .get(name.as_str())
        .ok_or_else(|| at("element not declared in the service_bundle DTD".into()))?;

    for a in node.attributes() {
        let an = attr_name(&a);
        let Some(r) = rule.attrs.iter().find(|r| r.name == an) else {
            return Err(at(format!("attribute '{an}' is not allowed")));
        };
        if let Some(values) = &r.values
            && !values.contains(&a.value())
        {
            return Err(at(format!(
                "attribute '{an}' is '{}', expected one of {}",
                a.value(),
                values.join(", ")
            )));
        }
    }
    for r in rule
        .attrs
        .iter()
        .filter(|r| r.presence == Presence::Required)
    {
        if !node.attributes().any(|a| attr_name(&a) == r.name) {
            return Err(at(format!("required attribute '{}' is missing", r.name)));
        }
    }

    let kids: Vec<roxmltree::Node<'_, '_>> = node.children().filter(|c| c.is_element()).collect();
    // An undeclared child is the more useful error than a model mismatch.
    if !matches!(rule.content, Content::Any)
        && let Some(k) = kids
            .iter()
            .find(|k| !rules().contains_key(qualified_name(**k).as_str()))
    {
        let line = doc.text_pos_at(k.range().start).row;
        return Err(format!(
            "line {line}: <{}>: element not declared in the service_bundle DTD",
            qualified_name(*k)
        ));
    }
    let has_text = node
        .children()
        .any(|c| c.is_text() && !c.text().unwrap_or("").trim().is_empty());
    match &rule.content {
        Content::Any => return Ok(()),
        Content::Empty => {
            if !kids.is_empty() || has_text {
                return Err(at("declared EMPTY but has content".into()));
            }
        }
        Content::Text => {
            if let Some(k) = kids.first() {
                return Err(at(format!(
                    "expected text only, found <{}>",
                    qualified_name(*k)
                )));
            }
        }
        Content::Children(model) => {
            if has_text {
                return Err(at("text is not allowed here".into()));
            }
            let names: Vec<String> = kids.iter().map(|k| qualified_name(*k)).collect();
            if !ends(model, &names, 0).contains(&names.len()) {
                return Err(at(format!(
                    "children ({}) do not match the content model",
                    names.join(", ")
                )));
            }
        }
    }
    for k in kids {
        check_element(doc, k)?;
    }
    Ok(())
}

/// Every `exec` attribute of an exec_method, with the program it runs.
pub fn exec_programs(doc: &roxmltree::Document<'_>) -> Vec<(String, String)> {
    doc.descendants()
        .filter(|n| n.has_tag_name("exec_method"))
        .filter_map(|n| {
            let exec = n.attribute("exec")?.trim().to_string();
            let name = n.attribute("name").unwrap_or("?").to_string();
            Some((name, exec))
        })
        .collect()
}

/// What `exec` runs, or `None` for SMF's built-in tokens (`:true`,
/// `:kill`, `:kill -HUP`, ...).
pub fn exec_program(exec: &str) -> Option<&str> {
    let first = exec.split_whitespace().next()?;
    if first.starts_with(':') {
        None
    } else {
        Some(first)
    }
}

/// Programs outside the proto are fine where the origin or pkgsrc provides
/// them; everything else must be shipped by this image.
pub fn provided_by_origin(program: &Path) -> bool {
    ["/usr/", "/lib/", "/sbin/", "/bin/", "/opt/local/"]
        .iter()
        .any(|p| program.to_string_lossy().starts_with(p))
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"<?xml version="1.0"?>
<!DOCTYPE service_bundle SYSTEM "/usr/share/lib/xml/dtd/service_bundle.dtd.1">
<service_bundle type="manifest" name="x">
  <service name="site/x" type="service" version="1">
    <create_default_instance enabled="true"/>
    <single_instance/>
    <dependency name="net" grouping="require_all" restart_on="none" type="service">
      <service_fmri value="svc:/network/physical"/>
    </dependency>
    <exec_method type="method" name="start" exec="/opt/x/bin/x &amp;" timeout_seconds="30">
      <method_context><method_environment><envvar name="A" value="b"/></method_environment></method_context>
    </exec_method>
    <exec_method type="method" name="stop" exec=":kill" timeout_seconds="30"/>
    <stability value="Unstable"/>
    <template><common_name><loctext xml:lang="C">x</loctext></common_name></template>
  </service>
</service_bundle>"#;

    #[test]
    fn accepts_a_manifest() {
        let doc = check_dtd(GOOD).unwrap();
        let execs = exec_programs(&doc);
        assert_eq!(execs.len(), 2);
        assert_eq!(exec_program(&execs[0].1), Some("/opt/x/bin/x"));
        assert_eq!(exec_program(&execs[1].1), None);
    }

    #[test]
    fn rejects_order_and_attrs() {
        let bad = GOOD.replace("<single_instance/>\n", "").replace(
            "<create_default_instance enabled=\"true\"/>",
            "<stability value=\"Unstable\"/><create_default_instance enabled=\"true\"/>",
        );
        assert!(check_dtd(&bad).unwrap_err().contains("content model"));
        let bad = GOOD.replace("restart_on=\"none\"", "restart_on=\"never\"");
        assert!(check_dtd(&bad).unwrap_err().contains("restart_on"));
        let bad = GOOD.replace(" timeout_seconds=\"30\"/>", "/>");
        assert!(check_dtd(&bad).unwrap_err().contains("timeout_seconds"));
        let bad = GOOD.replace("<single_instance/>", "<singleinstance/>");
        assert!(check_dtd(&bad).unwrap_err().contains("not declared"));
    }

    #[test]
    fn models() {
        let m = parse_model("(a?,(b|c)*,d)");
        let k = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert!(ends(&m, &k(&["a", "b", "c", "d"]), 0).contains(&4));
        assert!(ends(&m, &k(&["d"]), 0).contains(&1));
        assert!(!ends(&m, &k(&["d", "a"]), 0).contains(&2));
    }
}
