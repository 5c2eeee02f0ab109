//! The subset of Kubernetes JSONPath that printer columns use: `.a.b`, `['a.b']`, `[0]`, `[-1]`,
//! `[*]`, `[1:3]`, `..name`, and filters such as `[?(@.type=="Ready")]`.

use serde_json::Value;

#[derive(Debug, Clone, PartialEq)]
enum Step {
    Field(String),
    Wildcard,
    Recursive(String),
    Index(i64),
    Slice(Option<i64>, Option<i64>),
    Filter(Filter),
}

#[derive(Debug, Clone, PartialEq)]
struct Filter {
    path: Vec<Step>,
    comparison: Option<(String, Value)>,
}

/// A parsed expression.
#[derive(Debug, Clone)]
pub struct JsonPath {
    steps: Vec<Step>,
}

impl JsonPath {
    pub fn parse(expression: &str) -> Result<Self, String> {
        let mut text = expression.trim();
        if let Some(inner) = text.strip_prefix('{').and_then(|t| t.strip_suffix('}')) {
            text = inner.trim();
        }
        text = text.strip_prefix('$').unwrap_or(text);
        let chars: Vec<char> = text.chars().collect();
        let (steps, rest) = parse_steps(&chars, 0)?;
        if rest != chars.len() {
            return Err(format!(
                "unexpected text in JSONPath {expression:?} at {rest}"
            ));
        }
        Ok(JsonPath { steps })
    }

    pub fn find<'a>(&self, root: &'a Value) -> Vec<&'a Value> {
        evaluate(&self.steps, vec![root])
    }
}

fn parse_steps(chars: &[char], mut pos: usize) -> Result<(Vec<Step>, usize), String> {
    let mut steps = Vec::new();
    while pos < chars.len() {
        match chars[pos] {
            '.' => {
                if chars.get(pos + 1) == Some(&'.') {
                    let (name, next) = read_name(chars, pos + 2);
                    steps.push(Step::Recursive(name));
                    pos = next;
                } else {
                    let (name, next) = read_name(chars, pos + 1);
                    if name == "*" {
                        steps.push(Step::Wildcard);
                    } else if !name.is_empty() {
                        steps.push(Step::Field(name));
                    }
                    pos = next;
                }
            }
            '[' => {
                let close = find_bracket_end(chars, pos)?;
                let inner: String = chars[pos + 1..close].iter().collect();
                steps.push(parse_bracket(inner.trim())?);
                pos = close + 1;
            }
            ' ' | ')' | '=' | '!' | '<' | '>' => break,
            _ => {
                // a bare name at the start, as in `metadata.name` without the leading dot
                let (name, next) = read_name(chars, pos);
                if name.is_empty() {
                    return Err(format!("unexpected character {:?}", chars[pos]));
                }
                steps.push(Step::Field(name));
                pos = next;
            }
        }
    }
    Ok((steps, pos))
}

/// A field name up to the next `.` or `[`; `\.` escapes a dot (as in label keys).
fn read_name(chars: &[char], mut pos: usize) -> (String, usize) {
    let mut name = String::new();
    while pos < chars.len() {
        match chars[pos] {
            '\\' if chars.get(pos + 1) == Some(&'.') => {
                name.push('.');
                pos += 2;
            }
            '.' | '[' | ' ' | ')' | '=' | '!' | '<' | '>' => break,
            c => {
                name.push(c);
                pos += 1;
            }
        }
    }
    (name, pos)
}

fn find_bracket_end(chars: &[char], open: usize) -> Result<usize, String> {
    let mut depth = 0;
    let mut quote: Option<char> = None;
    for (i, c) in chars.iter().enumerate().skip(open) {
        match (quote, c) {
            (Some(q), c) if *c == q => quote = None,
            (Some(_), _) => {}
            (None, '\'' | '"') => quote = Some(*c),
            (None, '[') => depth += 1,
            (None, ']') => {
                depth -= 1;
                if depth == 0 {
                    return Ok(i);
                }
            }
            _ => {}
        }
    }
    Err("unclosed [ in JSONPath".to_string())
}

fn parse_bracket(inner: &str) -> Result<Step, String> {
    if inner == "*" {
        return Ok(Step::Wildcard);
    }
    if let Some(filter) = inner.strip_prefix("?(").and_then(|f| f.strip_suffix(')')) {
        return parse_filter(filter.trim()).map(Step::Filter);
    }
    if (inner.starts_with('\'') && inner.ends_with('\'')
        || inner.starts_with('"') && inner.ends_with('"'))
        && inner.len() >= 2
    {
        return Ok(Step::Field(inner[1..inner.len() - 1].to_string()));
    }
    if let Some((start, end)) = inner.split_once(':') {
        let bound = |s: &str| -> Result<Option<i64>, String> {
            let s = s.trim();
            if s.is_empty() {
                Ok(None)
            } else {
                s.parse().map(Some).map_err(|_| format!("bad slice bound {s:?}"))
            }
        };
        let end = end.split(':').next().unwrap_or("");
        return Ok(Step::Slice(bound(start)?, bound(end)?));
    }
    inner
        .parse::<i64>()
        .map(Step::Index)
        .map_err(|_| format!("unsupported JSONPath subscript [{inner}]"))
}

fn parse_filter(text: &str) -> Result<Filter, String> {
    let body = text.strip_prefix('@').ok_or_else(|| format!("filter must start with @: {text}"))?;
    let chars: Vec<char> = body.chars().collect();
    let (path, pos) = parse_steps(&chars, 0)?;
    let rest: String = chars[pos..].iter().collect();
    let rest = rest.trim();
    if rest.is_empty() {
        return Ok(Filter {
            path,
            comparison: None,
        });
    }
    for op in ["==", "!=", "<=", ">=", "<", ">"] {
        if let Some(literal) = rest.strip_prefix(op) {
            let literal = literal.trim();
            let value = if (literal.starts_with('"') && literal.ends_with('"')
                || literal.starts_with('\'') && literal.ends_with('\''))
                && literal.len() >= 2
            {
                Value::String(literal[1..literal.len() - 1].to_string())
            } else {
                serde_json::from_str(literal).unwrap_or(Value::String(literal.to_string()))
            };
            return Ok(Filter {
                path,
                comparison: Some((op.to_string(), value)),
            });
        }
    }
    Err(format!("unsupported filter {text:?}"))
}

fn collect_recursive<'a>(value: &'a Value, name: &str, out: &mut Vec<&'a Value>) {
    match value {
        Value::Object(map) => {
            if let Some(v) = map.get(name) {
                out.push(v);
            }
            for v in map.values() {
                collect_recursive(v, name, out);
            }
        }
        Value::Array(items) => items.iter().for_each(|v| collect_recursive(v, name, out)),
        _ => {}
    }
}

fn compare(left: &Value, op: &str, right: &Value) -> bool {
    match (left.as_f64(), right.as_f64()) {
        (Some(l), Some(r)) => match op {
            "==" => l == r,
            "!=" => l != r,
            "<" => l < r,
            ">" => l > r,
            "<=" => l <= r,
            ">=" => l >= r,
            _ => false,
        },
        _ => {
            let as_text = |v: &Value| match v {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            let (l, r) = (as_text(left), as_text(right));
            match op {
                "==" => l == r,
                "!=" => l != r,
                "<" => l < r,
                ">" => l > r,
                "<=" => l <= r,
                ">=" => l >= r,
                _ => false,
            }
        }
    }
}

fn evaluate<'a>(steps: &[Step], mut current: Vec<&'a Value>) -> Vec<&'a Value> {
    for step in steps {
        let mut next = Vec::new();
        for value in current {
            match step {
                Step::Field(name) => {
                    if let Some(v) = value.get(name.as_str()) {
                        next.push(v);
                    }
                }
                Step::Wildcard => match value {
                    Value::Object(map) => next.extend(map.values()),
                    Value::Array(items) => next.extend(items.iter()),
                    _ => {}
                },
                Step::Recursive(name) => collect_recursive(value, name, &mut next),
                Step::Index(i) => {
                    if let Value::Array(items) = value {
                        let len = items.len() as i64;
                        let index = if *i < 0 { len + i } else { *i };
                        if (0..len).contains(&index) {
                            next.push(&items[index as usize]);
                        }
                    }
                }
                Step::Slice(start, end) => {
                    if let Value::Array(items) = value {
                        let len = items.len() as i64;
                        let clamp = |b: i64| if b < 0 { (len + b).max(0) } else { b.min(len) };
                        let s = clamp(start.unwrap_or(0));
                        let e = clamp(end.unwrap_or(len));
                        if s < e {
                            next.extend(items[s as usize..e as usize].iter());
                        }
                    }
                }
                Step::Filter(filter) => {
                    if let Value::Array(items) = value {
                        for item in items {
                            let found = evaluate(&filter.path, vec![item]);
                            let keep = match &filter.comparison {
                                None => !found.is_empty(),
                                Some((op, literal)) => {
                                    found.iter().any(|v| compare(v, op, literal))
                                }
                            };
                            if keep {
                                next.push(item);
                            }
                        }
                    }
                }
            }
        }
        current = next;
    }
    current
}

/// How JSONPath printing renders a value: strings bare, everything else as JSON.
pub fn render(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn filters_and_fields() {
        let obj = json!({"status": {"conditions": [
            {"type": "Initialized", "status": "True"},
            {"type": "Ready", "status": "False"}]},
            "metadata": {"labels": {"app.kubernetes.io/name": "x"}},
            "spec": {"items": [1, 2, 3]}});
        let p = JsonPath::parse(r#".status.conditions[?(@.type=="Ready")].status"#).unwrap();
        assert_eq!(p.find(&obj), vec![&json!("False")]);
        let p = JsonPath::parse(r#"{.metadata.labels.app\.kubernetes\.io/name}"#).unwrap();
        assert_eq!(p.find(&obj), vec![&json!("x")]);
        let p = JsonPath::parse(".spec.items[-1]").unwrap();
        assert_eq!(p.find(&obj), vec![&json!(3)]);
        let p = JsonPath::parse(".spec.items[0:2]").unwrap();
        assert_eq!(p.find(&obj).len(), 2);
        let p = JsonPath::parse("..type").unwrap();
        assert_eq!(p.find(&obj).len(), 2);
        let p = JsonPath::parse(".metadata['labels']").unwrap();
        assert_eq!(p.find(&obj).len(), 1);
        assert!(JsonPath::parse(".spec.missing").unwrap().find(&obj).is_empty());
    }
}
