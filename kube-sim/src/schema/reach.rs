//! Which parts of `self` and `oldSelf` a rule can read. Converting a value to CEL copies it
//! whole, and a rule on a large object often reads one field of it (`has(self.a.b)`), so
//! rules that only select fields get just those fields converted.

use kube_cel::cel::common::ast::{EntryExpr, Expr, IdedExpr};
use serde_json::{Map, Value};

use super::escape::escape_property;

/// The parts of a variable that a rule reads.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Reach {
    /// All of it: the variable is compared, iterated, indexed or passed as a whole.
    Whole,
    /// The values at the end of these field chains, with everything below them.
    Fields(Vec<Chain>),
}

/// Fields selected one after another from the variable.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Chain {
    pub fields: Vec<String>,
    /// `has(...)`: whether the last field is there, not its value.
    pub presence: bool,
}

impl Reach {
    /// What the expressions read of `variable`.
    pub(crate) fn of(expressions: &[&IdedExpr], variable: &str) -> Reach {
        let mut finder = Finder {
            variable,
            chains: Vec::new(),
            whole: false,
        };
        for expression in expressions {
            finder.visit(expression);
        }
        if finder.whole {
            Reach::Whole
        } else {
            Reach::Fields(finder.chains)
        }
    }

    /// The part of `value` the rule can see, or None when that is all of it.
    pub(crate) fn part_of(&self, value: &Value) -> Option<Value> {
        let Reach::Fields(chains) = self else {
            return None;
        };
        if !value.is_object() {
            return None;
        }
        let mut part = Value::Object(Map::new());
        for chain in chains {
            copy_fields(value, &chain.fields, chain.presence, &mut part);
        }
        Some(part)
    }
}

struct Finder<'v> {
    variable: &'v str,
    chains: Vec<Chain>,
    whole: bool,
}

impl Finder<'_> {
    fn visit(&mut self, expression: &IdedExpr) {
        if self.whole {
            return;
        }
        match &expression.expr {
            Expr::Ident(name) => self.whole |= name == self.variable,
            Expr::Select(outermost) => {
                let mut fields = Vec::new();
                let mut operand = expression;
                while let Expr::Select(select) = &operand.expr {
                    fields.push(select.field.clone());
                    operand = &select.operand;
                }
                match &operand.expr {
                    Expr::Ident(name) if name == self.variable => {
                        fields.reverse();
                        self.chains.push(Chain {
                            fields,
                            presence: outermost.test,
                        });
                    }
                    _ => self.visit(operand),
                }
            }
            Expr::Call(call) => {
                if let Some(target) = &call.target {
                    self.visit(target);
                }
                for argument in &call.args {
                    self.visit(argument);
                }
            }
            Expr::Comprehension(comprehension) => {
                // A loop variable named like ours would hide it; not worth telling apart.
                let shadows = comprehension.iter_var == self.variable
                    || comprehension.accu_var == self.variable
                    || comprehension.iter_var2.as_deref() == Some(self.variable);
                self.whole |= shadows;
                for part in [
                    &comprehension.iter_range,
                    &comprehension.accu_init,
                    &comprehension.loop_cond,
                    &comprehension.loop_step,
                    &comprehension.result,
                ] {
                    self.visit(part);
                }
            }
            Expr::List(list) => {
                for element in &list.elements {
                    self.visit(element);
                }
            }
            Expr::Map(map) => {
                for entry in &map.entries {
                    self.entry(&entry.expr);
                }
            }
            Expr::Struct(structure) => {
                for entry in &structure.entries {
                    self.entry(&entry.expr);
                }
            }
            Expr::Literal(_) | Expr::Unspecified => {}
        }
    }

    fn entry(&mut self, entry: &EntryExpr) {
        match entry {
            EntryExpr::MapEntry(e) => {
                self.visit(&e.key);
                self.visit(&e.value);
            }
            EntryExpr::StructField(f) => self.visit(&f.value),
        }
    }
}

/// Copies into `part` what lies along `fields` in `source` (CEL names fields escaped).
fn copy_fields(source: &Value, fields: &[String], presence: bool, part: &mut Value) {
    let Some((field, rest)) = fields.split_first() else {
        *part = source.clone();
        return;
    };
    let (Value::Object(from), Value::Object(into)) = (source, &mut *part) else {
        // Selecting from a non-object fails the same way on a copy.
        *part = source.clone();
        return;
    };
    for (name, child) in
        from.iter().filter(|(name, _)| *name == field || escape_property(name) == *field)
    {
        if rest.is_empty() && presence {
            // has() looks at the key only; a full copy from another chain stays.
            into.entry(name.clone()).or_insert_with(|| hollow(child));
            continue;
        }
        let slot = into.entry(name.clone()).or_insert_with(|| Value::Object(Map::new()));
        if rest.is_empty() || !child.is_object() {
            *slot = child.clone();
        } else {
            copy_fields(child, rest, presence, slot);
        }
    }
}

/// A value of the same kind with nothing inside.
fn hollow(value: &Value) -> Value {
    match value {
        Value::Object(_) => Value::Object(Map::new()),
        Value::Array(_) => Value::Array(Vec::new()),
        scalar => scalar.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube_cel::cel::Program;
    use serde_json::json;

    fn reach(rule: &str, variable: &str) -> Reach {
        let program = Program::compile(rule).unwrap_or_else(|e| panic!("{rule}: {e}"));
        Reach::of(&[program.expression()], variable)
    }

    fn chain(fields: &[&str], presence: bool) -> Chain {
        Chain {
            fields: fields.iter().map(|f| f.to_string()).collect(),
            presence,
        }
    }

    #[test]
    fn selections_reach_their_fields_and_anything_else_the_whole() {
        let rule = "!has(oldSelf.a) || !has(oldSelf.a.name) || (has(self.a) && self.a.name != '')";
        assert_eq!(
            reach(rule, "self"),
            Reach::Fields(vec![chain(&["a"], true), chain(&["a", "name"], false)])
        );
        assert_eq!(
            reach("self.items.all(x, x.size > 0)", "self"),
            Reach::Fields(vec![chain(&["items"], false)])
        );
        assert_eq!(reach("self == oldSelf", "self"), Reach::Whole);
        assert_eq!(reach("self.all(x, x.name != '')", "self"), Reach::Whole);
        assert_eq!(reach("size(self) < 3", "self"), Reach::Whole);
        assert_eq!(reach("self.a.b == 1", "oldSelf"), Reach::Fields(vec![]));
    }

    #[test]
    fn a_part_holds_the_selected_fields_only() {
        let value = json!({"a": {"name": "x", "big": [1, 2, 3]}, "dash-key": 1, "other": {"n": 1}});
        let name_and_dash = Reach::Fields(vec![
            chain(&["a", "name"], false),
            chain(&["dash__dash__key"], false),
        ]);
        assert_eq!(
            name_and_dash.part_of(&value),
            Some(json!({"a": {"name": "x"}, "dash-key": 1}))
        );
        // has(self.a) needs a, not what is in it; unless another chain reads it.
        let presence = Reach::Fields(vec![chain(&["a"], true), chain(&["a", "name"], false)]);
        assert_eq!(presence.part_of(&value), Some(json!({"a": {"name": "x"}})));
        let read_whole = Reach::Fields(vec![chain(&["a"], false), chain(&["a"], true)]);
        assert_eq!(
            read_whole.part_of(&value),
            Some(json!({"a": {"name": "x", "big": [1, 2, 3]}}))
        );
        assert_eq!(Reach::Whole.part_of(&value), None);
        // Absent fields stay absent, so has() and "no such key" behave the same.
        let missing = Reach::Fields(vec![chain(&["missing"], false)]);
        assert_eq!(missing.part_of(&value), Some(json!({})));
    }
}
