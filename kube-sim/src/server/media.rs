//! Media-type parsing for Accept and Content-Type headers.

/// One media range of an Accept header, e.g. `application/json;as=Table;v=v1;g=meta.k8s.io`.
#[derive(Debug, Clone)]
pub struct MediaRange {
    /// lower-cased `type/subtype`
    pub essence: String,
    pub params: Vec<(String, String)>,
}

impl MediaRange {
    pub fn param(&self, key: &str) -> Option<&str> {
        self.params.iter().find(|(k, _)| k.eq_ignore_ascii_case(key)).map(|(_, v)| v.as_str())
    }
}

pub fn parse_media(text: &str) -> MediaRange {
    let mut parts = text.split(';');
    let essence = parts.next().unwrap_or("").trim().to_ascii_lowercase();
    let params = parts
        .filter_map(|p| {
            let (k, v) = p.split_once('=')?;
            Some((k.trim().to_string(), v.trim().trim_matches('"').to_string()))
        })
        .collect();
    MediaRange { essence, params }
}

/// Media ranges in the client's order (q values are not used by Kubernetes clients).
pub fn parse_accept(accept: &str) -> Vec<MediaRange> {
    accept.split(',').map(str::trim).filter(|s| !s.is_empty()).map(parse_media).collect()
}

/// How a GET/LIST/WATCH response should be shaped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResponseShape {
    Object,
    Table,
    PartialObjectMetadata,
}

/// Picks the first media range kube-sim can produce.
pub fn negotiate_shape(accept: Option<&str>) -> Result<ResponseShape, String> {
    let Some(accept) = accept else {
        return Ok(ResponseShape::Object);
    };
    let ranges = parse_accept(accept);
    if ranges.is_empty() {
        return Ok(ResponseShape::Object);
    }
    for range in &ranges {
        let json_like = matches!(
            range.essence.as_str(),
            "application/json" | "*/*" | "application/*" | "application/yaml"
        );
        if !json_like {
            continue;
        }
        match range.param("as") {
            None => return Ok(ResponseShape::Object),
            Some("Table") => {
                if range.param("g") == Some("meta.k8s.io")
                    && matches!(range.param("v"), Some("v1") | Some("v1beta1"))
                {
                    return Ok(ResponseShape::Table);
                }
            }
            Some("PartialObjectMetadata") | Some("PartialObjectMetadataList") => {
                if range.param("g") == Some("meta.k8s.io") {
                    return Ok(ResponseShape::PartialObjectMetadata);
                }
            }
            Some(_) => {}
        }
    }
    Err(accept.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kubectl_get_asks_for_a_table() {
        let accept = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json";
        assert_eq!(negotiate_shape(Some(accept)), Ok(ResponseShape::Table));
        assert_eq!(
            negotiate_shape(Some("application/json")),
            Ok(ResponseShape::Object)
        );
        assert_eq!(negotiate_shape(None), Ok(ResponseShape::Object));
        assert_eq!(
            negotiate_shape(Some(
                "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1"
            )),
            Ok(ResponseShape::PartialObjectMetadata)
        );
        assert!(negotiate_shape(Some("application/vnd.kubernetes.protobuf")).is_err());
    }
}
