//! The one part of cel-go's type checking that changes what the apiserver accepts most often:
//! a rule that selects a field its schema does not declare is rejected when the CRD is
//! written (`undefined field 'foo'`). The cel crate only parses, so this walks the parsed
//! expression with the schema as the type of `self`.

use kube_cel::cel::common::ast::{EntryExpr, Expr, IdedExpr, operators};

/// What the checker reads of a schema node ([`super::node::SchemaNode`] implements it).
pub(crate) trait DeclaredSchema {
    /// The schema of a map's values, when the node is a map with a schema for them.
    fn value_schema(&self) -> Option<&dyn DeclaredSchema>;
    fn item_schema(&self) -> Option<&dyn DeclaredSchema>;
    /// An object whose fields are all declared: not a map, not preserving unknown fields, with
    /// properties.
    fn is_declared_object(&self) -> bool;
    /// The property CEL names `field` (escaped).
    fn property(&self, field: &str) -> Option<&dyn DeclaredSchema>;
    fn is_embedded_resource(&self) -> bool;
}

/// What is known about an expression's value.
#[derive(Clone, Copy)]
enum Shape<'a> {
    Unknown,
    Node {
        schema: &'a dyn DeclaredSchema,
        /// Resource roots (and embedded resources) also have apiVersion, kind and a
        /// metadata restricted to name and generateName.
        resource: bool,
    },
    RestrictedMetadata,
}

struct Checker<'a> {
    self_shape: Shape<'a>,
    old_self_shape: Shape<'a>,
    scopes: Vec<(String, Shape<'a>)>,
    undefined: Vec<String>,
}

/// The fields a rule selects that its schema does not declare, in the order met.
pub(crate) fn undefined_fields(
    expression: &IdedExpr,
    schema: &dyn DeclaredSchema,
    resource: bool,
    optional_old_self: bool,
) -> Vec<String> {
    let self_shape = Shape::Node { schema, resource };
    let mut checker = Checker {
        self_shape,
        // With optionalOldSelf, oldSelf is an optional: fields are reached through value().
        old_self_shape: if optional_old_self {
            Shape::Unknown
        } else {
            self_shape
        },
        scopes: Vec::new(),
        undefined: Vec::new(),
    };
    checker.shape_of(expression);
    checker.undefined
}

impl<'a> Checker<'a> {
    fn shape_of(&mut self, expression: &IdedExpr) -> Shape<'a> {
        match &expression.expr {
            Expr::Ident(name) => self.ident(name),
            Expr::Select(select) => {
                let operand = self.shape_of(&select.operand);
                self.field(operand, &select.field)
            }
            Expr::Call(call) => {
                let target = call.target.as_deref().map(|t| self.shape_of(t));
                let args: Vec<Shape<'a>> = call.args.iter().map(|a| self.shape_of(a)).collect();
                match (call.func_name.as_str(), target, args.first()) {
                    (operators::INDEX, None, Some(container)) => value_of(*container),
                    _ => Shape::Unknown,
                }
            }
            Expr::Comprehension(comprehension) => {
                let range = self.shape_of(&comprehension.iter_range);
                self.shape_of(&comprehension.accu_init);
                let depth = self.scopes.len();
                // One variable: list items (map keys are strings); two: index or key, then value.
                let first_var = if comprehension.iter_var2.is_some() {
                    Shape::Unknown
                } else {
                    items_of(range)
                };
                self.scopes.push((comprehension.iter_var.clone(), first_var));
                if let Some(second) = &comprehension.iter_var2 {
                    self.scopes.push((second.clone(), value_of(range)));
                }
                self.scopes.push((comprehension.accu_var.clone(), Shape::Unknown));
                self.shape_of(&comprehension.loop_cond);
                self.shape_of(&comprehension.loop_step);
                self.shape_of(&comprehension.result);
                self.scopes.truncate(depth);
                Shape::Unknown
            }
            Expr::List(list) => {
                for element in &list.elements {
                    self.shape_of(element);
                }
                Shape::Unknown
            }
            Expr::Map(map) => {
                for entry in &map.entries {
                    self.entry(&entry.expr);
                }
                Shape::Unknown
            }
            Expr::Struct(structure) => {
                for entry in &structure.entries {
                    self.entry(&entry.expr);
                }
                Shape::Unknown
            }
            Expr::Literal(_) | Expr::Unspecified => Shape::Unknown,
        }
    }

    fn entry(&mut self, entry: &EntryExpr) {
        match entry {
            EntryExpr::MapEntry(e) => {
                self.shape_of(&e.key);
                self.shape_of(&e.value);
            }
            EntryExpr::StructField(f) => {
                self.shape_of(&f.value);
            }
        }
    }

    fn ident(&self, name: &str) -> Shape<'a> {
        if let Some((_, shape)) = self.scopes.iter().rev().find(|(n, _)| n == name) {
            return *shape;
        }
        match name {
            "self" => self.self_shape,
            "oldSelf" => self.old_self_shape,
            _ => Shape::Unknown,
        }
    }

    fn field(&mut self, operand: Shape<'a>, field: &str) -> Shape<'a> {
        match operand {
            Shape::Unknown => Shape::Unknown,
            Shape::RestrictedMetadata => {
                if field != "name" && field != "generateName" {
                    self.undefined.push(field.to_string());
                }
                Shape::Unknown
            }
            Shape::Node { schema, resource } => {
                // Maps take any key; untyped or int-or-string values are dynamic.
                if let Some(additional) = schema.value_schema() {
                    return shape(additional);
                }
                // Only declared objects are checked; preserved or property-less objects are
                // left alone rather than risk refusing a rule the apiserver takes.
                if !schema.is_declared_object() {
                    return Shape::Unknown;
                }
                if let Some(prop) = schema.property(field) {
                    if resource && field == "metadata" {
                        return Shape::RestrictedMetadata;
                    }
                    return shape(prop);
                }
                match field {
                    "metadata" if resource => Shape::RestrictedMetadata,
                    "apiVersion" | "kind" if resource => Shape::Unknown,
                    _ => {
                        self.undefined.push(field.to_string());
                        Shape::Unknown
                    }
                }
            }
        }
    }
}

fn shape(schema: &dyn DeclaredSchema) -> Shape<'_> {
    Shape::Node {
        schema,
        resource: schema.is_embedded_resource(),
    }
}

/// The shape of a list's items.
fn items_of(container: Shape<'_>) -> Shape<'_> {
    match container {
        Shape::Node { schema, .. } => schema.item_schema().map_or(Shape::Unknown, shape),
        _ => Shape::Unknown,
    }
}

/// The shape of a list's items or a map's values.
fn value_of(container: Shape<'_>) -> Shape<'_> {
    match container {
        Shape::Node { schema, .. } => match (schema.item_schema(), schema.value_schema()) {
            (Some(items), _) => shape(items),
            (None, Some(values)) => shape(values),
            (None, None) => Shape::Unknown,
        },
        _ => Shape::Unknown,
    }
}

/// cel-go's report for an undefined field: `ERROR: <input>:1:5: undefined field 'foo'`,
/// then the source line and a caret under the selecting dot.
pub(crate) fn undefined_field_report(source: &str, field: &str) -> String {
    let (line_number, line, column) = locate_select(source, field);
    format!(
        "ERROR: <input>:{line_number}:{}: undefined field '{field}'\n | {line}\n | {}^",
        column + 1,
        ".".repeat(column)
    )
}

/// Line (1-based), line text and column (0-based, in characters) of the first `.field`.
fn locate_select<'s>(source: &'s str, field: &str) -> (usize, &'s str, usize) {
    let needle = format!(".{field}");
    for (number, line) in source.lines().enumerate() {
        let mut from = 0;
        while let Some(found) = line[from..].find(&needle) {
            let at = from + found;
            let after = line[at + needle.len()..].chars().next();
            if !after.is_some_and(|c| c.is_alphanumeric() || c == '_') {
                return (number + 1, line, line[..at].chars().count());
            }
            from = at + needle.len();
        }
    }
    (1, source.lines().next().unwrap_or(""), 0)
}
