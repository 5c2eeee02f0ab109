//! Kubernetes quantities (`512Mi`, `1500m`, `2e3`): parsing, their value, and the canonical form
//! the API server stores for every quantity field of a built-in kind (`cpu: 1000m` reads back as
//! `1`, `memory: 1024Mi` as `1Gi`, `0.5` as `500m`), as apimachinery's `resource.Quantity`
//! serialises. Custom resources keep what was sent: their quantity fields are only
//! int-or-string in the CRD's schema.
//!
//! kube-sim includes this file too (`#[path]`), so the simulated API server and Federator's
//! comparison of desired with live objects use the same canonical form. It therefore depends on
//! nothing but `serde_json` and `thiserror`.

use std::collections::BTreeMap;

use serde_json::{Map, Value};
use thiserror::Error;

#[derive(Debug, Error, PartialEq, Eq, Clone)]
pub enum QuantityError {
    #[error("a quantity must be a string such as \"512Mi\"")]
    NotAString,
    #[error(
        "\"{0}\" is not a quantity (expected a number with an optional suffix such as Mi, Gi, k, M, m)"
    )]
    Malformed(String),
    #[error("\"{0}\" is too large")]
    TooLarge(String),
}

/// How a quantity was written; its canonical form keeps the kind of suffix.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QuantityFormat {
    /// `Ki`, `Mi`, … `Ei`
    BinarySi,
    /// `n`, `u`, `m`, none, `k`, `M`, … `E`
    DecimalSi,
    /// `e3`, `E-2`
    DecimalExponent,
}

/// A parsed Kubernetes quantity: `mantissa * 2^binary_exponent * 10^decimal_exponent`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Quantity {
    negative: bool,
    mantissa: u128,
    binary_exponent: u32,
    decimal_exponent: i32,
    format: QuantityFormat,
}

/// A quantity as a number: an integer when it is whole, else a decimal.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum QuantityNumber {
    Integer(i64),
    Decimal(f64),
}

const DECIMAL_SUFFIXES: [(i32, &str); 10] = [
    (-9, "n"),
    (-6, "u"),
    (-3, "m"),
    (0, ""),
    (3, "k"),
    (6, "M"),
    (9, "G"),
    (12, "T"),
    (15, "P"),
    (18, "E"),
];

const BINARY_SUFFIXES: [&str; 7] = ["", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei"];

impl Quantity {
    pub fn parse(text: &str) -> Result<Quantity, QuantityError> {
        let malformed = || QuantityError::Malformed(text.to_string());
        let trimmed = text.trim();
        let (negative, rest) = match trimmed.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, trimmed.strip_prefix('+').unwrap_or(trimmed)),
        };
        let number_end =
            rest.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(rest.len());
        let (number, suffix) = rest.split_at(number_end);
        let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
        if (whole.is_empty() && fraction.is_empty()) || fraction.contains('.') {
            return Err(malformed());
        }
        let digits = format!("{whole}{fraction}");
        let digits = digits.trim_start_matches('0');
        if digits.len() > 36 {
            return Err(QuantityError::TooLarge(text.to_string()));
        }
        let mantissa: u128 = if digits.is_empty() {
            0
        } else {
            digits.parse().map_err(|_| malformed())?
        };
        let binary = |exponent| (exponent, 0, QuantityFormat::BinarySi);
        let decimal = |exponent| (0, exponent, QuantityFormat::DecimalSi);
        let (binary_exponent, suffix_exponent, format) = match suffix {
            "Ki" => binary(10),
            "Mi" => binary(20),
            "Gi" => binary(30),
            "Ti" => binary(40),
            "Pi" => binary(50),
            "Ei" => binary(60),
            "n" => decimal(-9),
            "u" => decimal(-6),
            "m" => decimal(-3),
            "" => decimal(0),
            "k" => decimal(3),
            "M" => decimal(6),
            "G" => decimal(9),
            "T" => decimal(12),
            "P" => decimal(15),
            "E" => decimal(18),
            other => {
                let exponent = other
                    .strip_prefix(['e', 'E'])
                    .and_then(|e| e.parse::<i32>().ok())
                    .filter(|e| e.abs() <= 40)
                    .ok_or_else(malformed)?;
                (0, exponent, QuantityFormat::DecimalExponent)
            }
        };
        let fraction_digits = i32::try_from(fraction.len()).map_err(|_| malformed())?;
        Ok(Quantity {
            negative,
            mantissa,
            binary_exponent,
            decimal_exponent: suffix_exponent - fraction_digits,
            format,
        })
    }

    /// The exact value as `numerator / denominator` (both non-negative), if it fits in i128.
    fn ratio(&self) -> Option<(i128, i128)> {
        let mut numerator = i128::try_from(self.mantissa)
            .ok()?
            .checked_mul(1i128.checked_shl(self.binary_exponent)?)?;
        let mut denominator = 1i128;
        let ten_power = 10i128.checked_pow(self.decimal_exponent.unsigned_abs())?;
        if self.decimal_exponent >= 0 {
            numerator = numerator.checked_mul(ten_power)?;
        } else {
            denominator = ten_power;
        }
        Some((numerator, denominator))
    }

    /// The value as a JSON-friendly number: an integer when whole (as upstream converts
    /// quantities with no fractional digits), else a decimal.
    pub fn number(&self) -> QuantityNumber {
        let sign = if self.negative { -1 } else { 1 };
        if let Some((numerator, denominator)) = self.ratio() {
            if numerator % denominator == 0
                && let Ok(whole) = i64::try_from(sign * (numerator / denominator))
            {
                return QuantityNumber::Integer(whole);
            }
            return QuantityNumber::Decimal(sign as f64 * numerator as f64 / denominator as f64);
        }
        let approximate = self.mantissa as f64
            * 2f64.powi(self.binary_exponent as i32)
            * 10f64.powi(self.decimal_exponent);
        QuantityNumber::Decimal(sign as f64 * approximate)
    }

    /// The value rounded up to a whole number, as Kubernetes' `Quantity.Value()`.
    pub fn ceil_value(&self) -> Option<i64> {
        let (numerator, denominator) = self.ratio()?;
        let magnitude = if self.negative {
            numerator / denominator
        } else {
            (numerator + denominator - 1) / denominator
        };
        i64::try_from(if self.negative { -magnitude } else { magnitude }).ok()
    }

    /// The form the API server stores (apimachinery's `Quantity.String()` after parsing): values
    /// below a nano rounded up to `1n`, binary quantities capped at 2^63-1; no fractional
    /// digits, the largest exponent that loses no precision, the kind of suffix kept, except
    /// that a binary quantity below 1024 or not whole is written as a decimal one. `None` for
    /// values beyond what this type computes exactly (more than 38 digits); they are left as
    /// written.
    pub fn canonical(&self) -> Option<String> {
        let mut magnitude = self.mantissa.checked_mul(1u128.checked_shl(self.binary_exponent)?)?;
        let mut exponent = self.decimal_exponent;
        if magnitude == 0 {
            return Some("0".to_string());
        }
        if exponent < -9 {
            // whatever is asked for gets at least the smallest amount there is
            magnitude = match 10u128.checked_pow((-9 - exponent).unsigned_abs()) {
                Some(divisor) => magnitude.div_ceil(divisor),
                None => 1,
            };
            exponent = -9;
        }
        let sign = if self.negative { "-" } else { "" };
        let mut format = self.format;
        if format == QuantityFormat::BinarySi {
            let whole = if exponent >= 0 {
                magnitude.checked_mul(10u128.checked_pow(exponent.unsigned_abs())?)
            } else {
                let divisor = 10u128.pow(exponent.unsigned_abs());
                (magnitude % divisor == 0).then(|| magnitude / divisor)
            };
            let capped = |value: u128| value.min(i64::MAX as u128);
            match whole.map(capped) {
                Some(value) if value >= 1024 => {
                    let mut number = value;
                    let mut power = 0;
                    while number % 1024 == 0 && power + 1 < BINARY_SUFFIXES.len() {
                        number /= 1024;
                        power += 1;
                    }
                    return Some(format!("{sign}{number}{}", BINARY_SUFFIXES[power]));
                }
                // above the cap but not whole: the cap applies all the same
                None if magnitude / 10u128.pow(exponent.unsigned_abs()) > i64::MAX as u128 => {
                    return Some(format!("{sign}{}", i64::MAX));
                }
                _ => format = QuantityFormat::DecimalSi,
            }
        }
        while magnitude % 10 == 0 {
            magnitude /= 10;
            exponent += 1;
        }
        while exponent.rem_euclid(3) != 0 {
            magnitude = magnitude.checked_mul(10)?;
            exponent -= 1;
        }
        let suffix = match format {
            QuantityFormat::DecimalSi => DECIMAL_SUFFIXES
                .iter()
                .find(|(e, _)| *e == exponent)
                .map(|(_, s)| (*s).to_string())
                .unwrap_or_else(|| format!("e{exponent}")),
            _ if exponent == 0 => String::new(),
            _ => format!("e{exponent}"),
        };
        Some(format!("{sign}{magnitude}{suffix}"))
    }
}

/// The canonical form of a quantity field's JSON value (a string, or a number as JSON decoding
/// into a quantity accepts); `Ok(None)` when it is already canonical or cannot be computed.
pub fn canonical_value(value: &Value) -> Result<Option<String>, QuantityError> {
    let text = match value {
        Value::String(text) => text.clone(),
        Value::Number(number) => number.to_string(),
        _ => return Err(QuantityError::NotAString),
    };
    let canonical = Quantity::parse(&text)?.canonical();
    Ok(canonical.filter(|c| *value != Value::String(c.clone())))
}

/// The OpenAPI definition of `resource.Quantity` that typed fields refer to.
const QUANTITY_DEFINITION: &str = "io.k8s.apimachinery.pkg.api.resource.Quantity";

/// Where an object's quantity fields are, read from its kind's OpenAPI schema: only the
/// branches that lead to a quantity.
#[derive(Clone, Debug, PartialEq)]
pub enum QuantityFields {
    Quantity,
    Object {
        properties: BTreeMap<String, QuantityFields>,
        /// the values of a map (`limits: {cpu: …}`)
        values: Option<Box<QuantityFields>>,
    },
    List(Box<QuantityFields>),
}

impl QuantityFields {
    /// The quantity fields of the definition `root` among OpenAPI `definitions` (keyed by name,
    /// referred to as `…/<name>`); `None` when it holds none.
    pub fn of_definition(root: &str, definitions: &Map<String, Value>) -> Option<QuantityFields> {
        let mut visiting = Vec::new();
        definition_fields(root, definitions, &mut visiting)
    }

    /// Puts every quantity of `value` in canonical form. A quantity that does not parse is the
    /// error, with its path (`spec.template.spec.containers[0].resources.limits.cpu`).
    pub fn canonicalize(&self, value: &mut Value) -> Result<(), (String, QuantityError)> {
        let mut path = String::new();
        self.canonicalize_at(value, &mut path)
    }

    fn canonicalize_at(
        &self,
        value: &mut Value,
        path: &mut String,
    ) -> Result<(), (String, QuantityError)> {
        match (self, value) {
            (QuantityFields::Quantity, Value::Null) => Ok(()),
            (QuantityFields::Quantity, value) => match canonical_value(value) {
                Ok(Some(canonical)) => {
                    *value = Value::String(canonical);
                    Ok(())
                }
                Ok(None) | Err(QuantityError::TooLarge(_)) => Ok(()),
                Err(error) => Err((path.clone(), error)),
            },
            (QuantityFields::Object { properties, values }, Value::Object(map)) => {
                for (key, child) in map.iter_mut() {
                    let fields = match values {
                        Some(values) => Some(values.as_ref()),
                        None => properties.get(key),
                    };
                    if let Some(fields) = fields {
                        let length = path.len();
                        if !path.is_empty() {
                            path.push('.');
                        }
                        path.push_str(key);
                        fields.canonicalize_at(child, path)?;
                        path.truncate(length);
                    }
                }
                Ok(())
            }
            (QuantityFields::List(fields), Value::Array(items)) => {
                for (index, item) in items.iter_mut().enumerate() {
                    let length = path.len();
                    path.push_str(&format!("[{index}]"));
                    fields.canonicalize_at(item, path)?;
                    path.truncate(length);
                }
                Ok(())
            }
            _ => Ok(()),
        }
    }
}

fn definition_fields(
    name: &str,
    definitions: &Map<String, Value>,
    visiting: &mut Vec<String>,
) -> Option<QuantityFields> {
    if name == QUANTITY_DEFINITION {
        return Some(QuantityFields::Quantity);
    }
    // recursive types (JSONSchemaProps) hold no quantity
    if visiting.iter().any(|v| v == name) {
        return None;
    }
    visiting.push(name.to_string());
    let fields =
        definitions.get(name).and_then(|schema| schema_fields(schema, definitions, visiting));
    visiting.pop();
    fields
}

fn schema_fields(
    schema: &Value,
    definitions: &Map<String, Value>,
    visiting: &mut Vec<String>,
) -> Option<QuantityFields> {
    if let Some(reference) = schema.get("$ref").and_then(Value::as_str) {
        let name = reference.rsplit('/').next().unwrap_or(reference);
        return definition_fields(name, definitions, visiting);
    }
    for combinator in ["allOf", "anyOf", "oneOf"] {
        if let Some(branches) = schema.get(combinator).and_then(Value::as_array)
            && let Some(fields) =
                branches.iter().find_map(|branch| schema_fields(branch, definitions, visiting))
        {
            return Some(fields);
        }
    }
    if let Some(items) = schema.get("items") {
        return schema_fields(items, definitions, visiting).map(|f| QuantityFields::List(f.into()));
    }
    let properties: BTreeMap<String, QuantityFields> = schema
        .get("properties")
        .and_then(Value::as_object)
        .map(|properties| {
            properties
                .iter()
                .filter_map(|(key, property)| {
                    schema_fields(property, definitions, visiting).map(|f| (key.clone(), f))
                })
                .collect()
        })
        .unwrap_or_default();
    let values = schema
        .get("additionalProperties")
        .filter(|_| schema.get("properties").is_none())
        .filter(|a| a.is_object())
        .and_then(|a| schema_fields(a, definitions, visiting))
        .map(Box::new);
    (!properties.is_empty() || values.is_some())
        .then_some(QuantityFields::Object { properties, values })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn canonical(text: &str) -> String {
        Quantity::parse(text).expect("a valid quantity").canonical().expect("computable")
    }

    #[test]
    fn quantities_become_numbers() {
        let n = |text: &str| Quantity::parse(text).expect("valid").number();
        assert_eq!(n("512Mi"), QuantityNumber::Integer(536870912));
        assert_eq!(n("512M"), QuantityNumber::Integer(512000000));
        assert_eq!(n("1.5Gi"), QuantityNumber::Integer(1610612736));
        assert_eq!(n("1Mi"), QuantityNumber::Integer(1048576));
        assert_eq!(n("100m"), QuantityNumber::Decimal(0.1));
        assert_eq!(n("1e3"), QuantityNumber::Integer(1000));
        assert_eq!(n("7199"), QuantityNumber::Integer(7199));
        assert_eq!(n("-2k"), QuantityNumber::Integer(-2000));
        assert_eq!(n("0.5"), QuantityNumber::Decimal(0.5));
        assert!(Quantity::parse("").is_err());
        assert!(Quantity::parse("12Q").is_err());
        assert!(Quantity::parse("1.2.3").is_err());
        assert!(Quantity::parse(".").is_err());
        assert_eq!(
            Quantity::parse("64Mi").expect("valid").ceil_value(),
            Some(67108864)
        );
        assert_eq!(
            Quantity::parse("1500m").expect("valid").ceil_value(),
            Some(2)
        );
    }

    #[test]
    fn decimal_quantities_take_the_largest_exact_suffix() {
        for (written, stored) in [
            ("1000m", "1"),
            ("0.5", "500m"),
            ("1.5", "1500m"),
            ("200m", "200m"),
            ("1000", "1k"),
            ("1500000", "1500k"),
            ("2000M", "2G"),
            ("100", "100"),
            ("0.1m", "100u"),
            ("1536", "1536"),
            ("0", "0"),
            ("0.000", "0"),
            ("00100m", "100m"),
            ("+1", "1"),
            ("-1000m", "-1"),
            ("1E", "1E"),
            ("1000P", "1E"),
            (" 2 ", "2"),
            ("1.", "1"),
            (".5", "500m"),
        ] {
            assert_eq!(canonical(written), stored, "{written}");
        }
    }

    #[test]
    fn sub_nano_quantities_round_up_to_a_nano() {
        assert_eq!(canonical("0.0000000001"), "1n");
        assert_eq!(canonical("1.5n"), "2n");
        assert_eq!(canonical("-0.1n"), "-1n");
        assert_eq!(canonical("1e-20"), "1e-9");
    }

    #[test]
    fn binary_quantities_stay_binary_when_whole_and_at_least_1024() {
        for (written, stored) in [
            ("1024Mi", "1Gi"),
            ("1Gi", "1Gi"),
            ("1.5Gi", "1536Mi"),
            ("0.5Gi", "512Mi"),
            ("2048Ki", "2Mi"),
            ("1536Ki", "1536Ki"),
            ("1Ki", "1Ki"),
            // below 1024 or not whole: written as a decimal quantity
            ("0.5Ki", "512"),
            ("0.5", "500m"),
            ("0.001Ki", "1024m"),
            ("1.0001Ki", "1024102400u"),
            ("0Gi", "0"),
            ("-2048Ki", "-2Mi"),
            // capped at 2^63-1
            ("8Ei", "9223372036854775807"),
            ("16Ei", "9223372036854775807"),
        ] {
            assert_eq!(canonical(written), stored, "{written}");
        }
    }

    #[test]
    fn exponent_quantities_keep_the_exponent_form() {
        for (written, stored) in [
            ("1e3", "1e3"),
            ("12E6", "12e6"),
            ("1.5e3", "1500"),
            ("1e0", "1"),
            ("1e-3", "1e-3"),
            ("10e2", "1e3"),
            ("100e-5", "1e-3"),
        ] {
            assert_eq!(canonical(written), stored, "{written}");
        }
    }

    #[test]
    fn canonical_values_of_json_strings_and_numbers() {
        assert_eq!(canonical_value(&json!("1000m")), Ok(Some("1".to_string())));
        assert_eq!(canonical_value(&json!("1")), Ok(None));
        assert_eq!(canonical_value(&json!(2)), Ok(Some("2".to_string())));
        assert_eq!(canonical_value(&json!(0.5)), Ok(Some("500m".to_string())));
        assert_eq!(
            canonical_value(&json!("lots")),
            Err(QuantityError::Malformed("lots".into()))
        );
        assert_eq!(
            canonical_value(&json!(true)),
            Err(QuantityError::NotAString)
        );
    }

    fn definitions() -> Map<String, Value> {
        let quantity =
            json!({"$ref": "#/components/schemas/io.k8s.apimachinery.pkg.api.resource.Quantity"});
        json!({
            "io.k8s.apimachinery.pkg.api.resource.Quantity": {"type": "string"},
            "Pod": {"properties": {
                "metadata": {"properties": {"name": {"type": "string"}}},
                "spec": {"$ref": "#/components/schemas/PodSpec"},
            }},
            "PodSpec": {"properties": {
                "containers": {"type": "array", "items": {"$ref": "#/components/schemas/Container"}},
                "overhead": {"type": "object", "additionalProperties": quantity},
                "self": {"$ref": "#/components/schemas/PodSpec"},
            }},
            "Container": {"properties": {
                "name": {"type": "string"},
                "resources": {"allOf": [{"$ref": "#/components/schemas/Resources"}]},
            }},
            "Resources": {"properties": {
                "limits": {"type": "object", "additionalProperties": quantity},
                "requests": {"type": "object", "additionalProperties": quantity},
            }},
            "ConfigMap": {"properties": {"data": {"type": "object", "additionalProperties": {"type": "string"}}}},
        })
        .as_object()
        .cloned()
        .unwrap_or_default()
    }

    #[test]
    fn schema_fields_lead_to_every_quantity_and_nothing_else() {
        let definitions = definitions();
        assert_eq!(
            QuantityFields::of_definition("ConfigMap", &definitions),
            None
        );
        let pod = QuantityFields::of_definition("Pod", &definitions).expect("pods have quantities");
        let mut object = json!({
            "metadata": {"name": "1000m"},
            "spec": {
                "containers": [
                    {"name": "1000m", "resources": {"limits": {"cpu": "1000m", "memory": "1024Mi"}, "requests": {"cpu": 0.5}}},
                    {"name": "b"}
                ],
                "overhead": {"memory": "2048Ki"},
            }
        });
        pod.canonicalize(&mut object).expect("valid quantities");
        assert_eq!(
            object,
            json!({
                "metadata": {"name": "1000m"},
                "spec": {
                    "containers": [
                        {"name": "1000m", "resources": {"limits": {"cpu": "1", "memory": "1Gi"}, "requests": {"cpu": "500m"}}},
                        {"name": "b"}
                    ],
                    "overhead": {"memory": "2Mi"},
                }
            })
        );
        let mut bad = json!({"spec": {"containers": [{"resources": {"limits": {"cpu": "lots"}}}]}});
        assert_eq!(
            pod.canonicalize(&mut bad),
            Err((
                "spec.containers[0].resources.limits.cpu".to_string(),
                QuantityError::Malformed("lots".into())
            ))
        );
    }
}
