//! Label and field selectors, parsed and matched as kube-apiserver does.

use serde_json::{Map, Value};

use crate::error::{ApiError, ApiResult};

#[derive(Clone, Debug, PartialEq, Eq)]
enum LabelOp {
    Equals,
    NotEquals,
    In,
    NotIn,
    Exists,
    DoesNotExist,
    GreaterThan,
    LessThan,
}

#[derive(Clone, Debug)]
struct Requirement {
    key: String,
    op: LabelOp,
    values: Vec<String>,
}

impl Requirement {
    fn matches(&self, labels: Option<&Map<String, Value>>) -> bool {
        let value = labels.and_then(|l| l.get(&self.key)).and_then(Value::as_str);
        match self.op {
            LabelOp::Equals | LabelOp::In => {
                value.is_some_and(|v| self.values.iter().any(|x| x == v))
            }
            // `!=` and `notin` also match objects that do not have the label at all.
            LabelOp::NotEquals | LabelOp::NotIn => {
                value.is_none_or(|v| !self.values.iter().any(|x| x == v))
            }
            LabelOp::Exists => value.is_some(),
            LabelOp::DoesNotExist => value.is_none(),
            LabelOp::GreaterThan | LabelOp::LessThan => {
                let (Some(actual), Some(bound)) = (
                    value.and_then(|v| v.parse::<i64>().ok()),
                    self.values.first().and_then(|v| v.parse::<i64>().ok()),
                ) else {
                    return false;
                };
                if self.op == LabelOp::GreaterThan {
                    actual > bound
                } else {
                    actual < bound
                }
            }
        }
    }
}

/// A parsed label selector; requirements are ANDed.
#[derive(Clone, Debug, Default)]
pub struct LabelSelector {
    requirements: Vec<Requirement>,
}

#[derive(Clone, Debug, PartialEq)]
enum Token {
    Identifier(String),
    Comma,
    Open,
    Close,
    Bang,
    Equals,
    DoubleEquals,
    NotEquals,
    Greater,
    Less,
    In,
    NotIn,
    End,
}

impl Token {
    fn literal(&self) -> String {
        match self {
            Token::Identifier(s) => s.clone(),
            Token::Comma => ",".into(),
            Token::Open => "(".into(),
            Token::Close => ")".into(),
            Token::Bang => "!".into(),
            Token::Equals => "=".into(),
            Token::DoubleEquals => "==".into(),
            Token::NotEquals => "!=".into(),
            Token::Greater => ">".into(),
            Token::Less => "<".into(),
            Token::In => "in".into(),
            Token::NotIn => "notin".into(),
            Token::End => "".into(),
        }
    }
}

fn is_special(c: char) -> bool {
    matches!(c, ',' | '(' | ')' | '!' | '=' | '<' | '>')
}

fn tokenize(input: &str) -> Vec<Token> {
    let chars: Vec<char> = input.chars().collect();
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
            continue;
        }
        let next = chars.get(i + 1).copied();
        let (token, width) = match (c, next) {
            (',', _) => (Token::Comma, 1),
            ('(', _) => (Token::Open, 1),
            (')', _) => (Token::Close, 1),
            ('!', Some('=')) => (Token::NotEquals, 2),
            ('!', _) => (Token::Bang, 1),
            ('=', Some('=')) => (Token::DoubleEquals, 2),
            ('=', _) => (Token::Equals, 1),
            ('>', _) => (Token::Greater, 1),
            ('<', _) => (Token::Less, 1),
            _ => {
                let start = i;
                let mut end = i;
                while end < chars.len() && !chars[end].is_whitespace() && !is_special(chars[end]) {
                    end += 1;
                }
                let word: String = chars[start..end].iter().collect();
                let token = match word.as_str() {
                    "in" => Token::In,
                    "notin" => Token::NotIn,
                    _ => Token::Identifier(word),
                };
                (token, end - start)
            }
        };
        tokens.push(token);
        i += width;
    }
    tokens.push(Token::End);
    tokens
}

const QUALIFIED_NAME_MSG: &str = "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')";
const LABEL_VALUE_MSG: &str = "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')";

fn is_name_part(s: &str) -> bool {
    let bytes = s.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= 63
        && bytes[0].is_ascii_alphanumeric()
        && bytes[bytes.len() - 1].is_ascii_alphanumeric()
        && bytes.iter().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

fn requirement_error(detail: String) -> ApiError {
    ApiError::bad_request(format!("unable to parse requirement: {detail}"))
}

fn validate_key(key: &str) -> ApiResult<()> {
    let name = match key.split_once('/') {
        Some((prefix, name)) => {
            if super::meta::subdomain_error(prefix).is_some() {
                return Err(requirement_error(format!(
                    "<nil>: Invalid value: \"{key}\": prefix part a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
                )));
            }
            name
        }
        None => key,
    };
    if name.len() > 63 {
        return Err(requirement_error(format!(
            "<nil>: Invalid value: \"{key}\": name part must be no more than 63 characters"
        )));
    }
    if !is_name_part(name) {
        return Err(requirement_error(format!(
            "<nil>: Invalid value: \"{key}\": {QUALIFIED_NAME_MSG}"
        )));
    }
    Ok(())
}

fn validate_value(value: &str) -> ApiResult<()> {
    if value.is_empty() {
        return Ok(());
    }
    if value.len() > 63 {
        return Err(requirement_error(format!(
            "values[0][key]: Invalid value: \"{value}\": must be no more than 63 characters"
        )));
    }
    if !is_name_part(value) {
        return Err(requirement_error(format!(
            "values[0][key]: Invalid value: \"{value}\": {LABEL_VALUE_MSG}"
        )));
    }
    Ok(())
}

struct Parser {
    tokens: Vec<Token>,
    position: usize,
}

impl Parser {
    fn peek(&self) -> &Token {
        &self.tokens[self.position.min(self.tokens.len() - 1)]
    }

    fn next(&mut self) -> Token {
        let token = self.peek().clone();
        if self.position < self.tokens.len() {
            self.position += 1;
        }
        token
    }

    fn unexpected(found: &Token, expected: &str) -> ApiError {
        ApiError::bad_request(format!("found '{}', expected: {expected}", found.literal()))
    }

    fn identifier(&mut self, expected: &str) -> ApiResult<String> {
        match self.next() {
            Token::Identifier(s) => Ok(s),
            other => Err(Self::unexpected(&other, expected)),
        }
    }

    /// A single value after `=`, `==` or `!=`: may be empty (`a=` selects the empty value).
    fn single_value(&mut self) -> ApiResult<String> {
        match self.peek() {
            Token::Identifier(_) => self.identifier("identifier"),
            Token::Comma | Token::End => Ok(String::new()),
            other => Err(Self::unexpected(&other.clone(), "identifier")),
        }
    }

    fn value_set(&mut self) -> ApiResult<Vec<String>> {
        match self.next() {
            Token::Open => {}
            other => return Err(Self::unexpected(&other, "'('")),
        }
        let mut values = Vec::new();
        loop {
            match self.next() {
                Token::Identifier(v) => {
                    values.push(v);
                    match self.next() {
                        Token::Comma => continue,
                        Token::Close => break,
                        other => return Err(Self::unexpected(&other, "',' or ')'")),
                    }
                }
                // `(a,)` and `()` contain the empty value
                Token::Comma => values.push(String::new()),
                Token::Close => {
                    values.push(String::new());
                    break;
                }
                other => return Err(Self::unexpected(&other, "',', ')' or identifier")),
            }
        }
        Ok(values)
    }

    fn requirement(&mut self) -> ApiResult<Requirement> {
        if *self.peek() == Token::Bang {
            self.next();
            let key = self.identifier("identifier")?;
            validate_key(&key)?;
            return Ok(Requirement {
                key,
                op: LabelOp::DoesNotExist,
                values: vec![],
            });
        }
        let key = self.identifier("identifier")?;
        validate_key(&key)?;
        let (op, values) = match self.peek().clone() {
            Token::Comma | Token::End => (LabelOp::Exists, vec![]),
            Token::Equals | Token::DoubleEquals => {
                self.next();
                (LabelOp::Equals, vec![self.single_value()?])
            }
            Token::NotEquals => {
                self.next();
                (LabelOp::NotEquals, vec![self.single_value()?])
            }
            Token::In => {
                self.next();
                (LabelOp::In, self.value_set()?)
            }
            Token::NotIn => {
                self.next();
                (LabelOp::NotIn, self.value_set()?)
            }
            Token::Greater | Token::Less => {
                let op = if self.next() == Token::Greater {
                    LabelOp::GreaterThan
                } else {
                    LabelOp::LessThan
                };
                let value = self.identifier("identifier")?;
                if value.parse::<i64>().is_err() {
                    return Err(requirement_error(format!(
                        "values[0]: Invalid value: \"{value}\": for 'Gt', 'Lt' operators, the value must be an integer"
                    )));
                }
                (op, vec![value])
            }
            other => {
                return Err(Self::unexpected(&other, "'=', '!=', '==', 'in', notin'"));
            }
        };
        if !matches!(op, LabelOp::GreaterThan | LabelOp::LessThan) {
            for value in &values {
                validate_value(value)?;
            }
        }
        Ok(Requirement { key, op, values })
    }
}

impl LabelSelector {
    /// Parses `a=b,c!=d,e in (f,g),!h,i>5`. An empty string selects everything.
    pub fn parse(input: &str) -> ApiResult<Self> {
        let mut parser = Parser {
            tokens: tokenize(input),
            position: 0,
        };
        let mut requirements = Vec::new();
        if *parser.peek() == Token::End {
            return Ok(LabelSelector { requirements });
        }
        loop {
            requirements.push(parser.requirement()?);
            match parser.next() {
                Token::Comma => continue,
                Token::End => break,
                other => return Err(Parser::unexpected(&other, "',' or 'end of string'")),
            }
        }
        Ok(LabelSelector { requirements })
    }

    pub fn is_empty(&self) -> bool {
        self.requirements.is_empty()
    }

    pub fn matches_labels(&self, labels: Option<&Map<String, Value>>) -> bool {
        self.requirements.iter().all(|r| r.matches(labels))
    }

    pub fn matches(&self, object: &Value) -> bool {
        let labels =
            object.get("metadata").and_then(|m| m.get("labels")).and_then(Value::as_object);
        self.matches_labels(labels)
    }
}

/// A parsed field selector: `field=value`, `field==value`, `field!=value`, ANDed by commas.
#[derive(Clone, Debug, Default)]
pub struct FieldSelector {
    terms: Vec<(String, bool, String)>,
}

/// Splits on unescaped commas, keeping backslash escapes for the term parser.
fn split_terms(input: &str) -> Vec<String> {
    let mut terms = Vec::new();
    let mut current = String::new();
    let mut chars = input.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                current.push(c);
                if let Some(escaped) = chars.next() {
                    current.push(escaped);
                }
            }
            ',' => terms.push(std::mem::take(&mut current)),
            _ => current.push(c),
        }
    }
    terms.push(current);
    terms
}

fn unescape(value: &str) -> ApiResult<String> {
    let mut out = String::new();
    let mut chars = value.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            match chars.next() {
                Some(e @ ('\\' | ',' | '=')) => out.push(e),
                _ => {
                    return Err(ApiError::bad_request(format!(
                        "invalid field selector: invalid escape sequence in {value}"
                    )));
                }
            }
        } else {
            out.push(c);
        }
    }
    Ok(out)
}

impl FieldSelector {
    /// Parses a field selector; `supported` lists the fields beyond `metadata.name` and
    /// `metadata.namespace` that this resource accepts.
    pub fn parse(input: &str, supported: &[&str]) -> ApiResult<Self> {
        let mut terms = Vec::new();
        if input.trim().is_empty() {
            return Ok(FieldSelector { terms });
        }
        for raw in split_terms(input) {
            let raw = raw.trim();
            if raw.is_empty() {
                continue;
            }
            let (field, negate, value) = if let Some((f, v)) = raw.split_once("!=") {
                (f, true, v)
            } else if let Some((f, v)) = raw.split_once("==") {
                (f, false, v)
            } else if let Some((f, v)) = raw.split_once('=') {
                (f, false, v)
            } else {
                return Err(ApiError::bad_request(format!(
                    "invalid selector: '{input}'; can't understand '{raw}'"
                )));
            };
            let field = field.trim();
            if field != "metadata.name"
                && field != "metadata.namespace"
                && !supported.contains(&field)
            {
                return Err(ApiError::bad_request(format!(
                    "field label not supported: {field}"
                )));
            }
            terms.push((field.to_string(), negate, unescape(value.trim())?));
        }
        Ok(FieldSelector { terms })
    }

    pub fn is_empty(&self) -> bool {
        self.terms.is_empty()
    }

    pub fn matches(&self, object: &Value) -> bool {
        self.terms.iter().all(|(field, negate, expected)| {
            let actual = field_value(object, field);
            (actual == *expected) != *negate
        })
    }
}

/// The string value of a dotted field path, "" when absent (as the apiserver's field sets do).
fn field_value(object: &Value, path: &str) -> String {
    let mut current = object;
    for part in path.split('.') {
        match current.get(part) {
            Some(next) => current = next,
            None => return String::new(),
        }
    }
    match current {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        other => other.to_string(),
    }
}

/// Both selectors of a list or watch request.
#[derive(Clone, Debug, Default)]
pub struct Selectors {
    pub labels: LabelSelector,
    pub fields: FieldSelector,
}

impl Selectors {
    pub fn parse(
        label: Option<&str>,
        field: Option<&str>,
        supported_fields: &[&str],
    ) -> ApiResult<Self> {
        Ok(Selectors {
            labels: match label {
                Some(s) => LabelSelector::parse(s)?,
                None => LabelSelector::default(),
            },
            fields: match field {
                Some(s) => FieldSelector::parse(s, supported_fields)?,
                None => FieldSelector::default(),
            },
        })
    }

    pub fn is_empty(&self) -> bool {
        self.labels.is_empty() && self.fields.is_empty()
    }

    pub fn matches(&self, object: &Value) -> bool {
        self.labels.matches(object) && self.fields.matches(object)
    }

    /// Whether matching reads this top-level member of an object (labels and the metadata
    /// fields are in `metadata`).
    pub fn reads_member(&self, name: &str) -> bool {
        name == "metadata"
            || self.fields.terms.iter().any(|(field, _, _)| field.split('.').next() == Some(name))
    }
}
