//! JSON documents on standard output: every one carries `"schema"`, the version of its shape
//! (docs/json.md). It changes only when a field changes meaning or goes away; fields may be
//! added within a version.

use anyhow::Result;
use serde::Serialize;
use serde_json::Value;

/// The schema version every `--json` document carries.
pub const SCHEMA: u32 = 1;

/// `value` as a JSON object with `"schema"` added (arrays and scalars are left as they are).
pub fn with_schema<T: Serialize + ?Sized>(value: &T) -> Result<Value> {
    let mut v = serde_json::to_value(value)?;
    if let Value::Object(o) = &mut v {
        o.insert("schema".into(), SCHEMA.into());
    }
    Ok(v)
}

/// One line.
pub fn doc<T: Serialize + ?Sized>(value: &T) -> Result<String> {
    Ok(with_schema(value)?.to_string())
}

/// Indented, for documents people read too.
pub fn doc_pretty<T: Serialize + ?Sized>(value: &T) -> Result<String> {
    Ok(serde_json::to_string_pretty(&with_schema(value)?)?)
}

#[cfg(test)]
mod tests {
    #[test]
    fn objects_get_the_schema_field() {
        let v = super::with_schema(&serde_json::json!({ "a": 1 })).unwrap();
        assert_eq!(v["schema"], 1);
        assert_eq!(v["a"], 1);
        assert_eq!(super::with_schema(&[1, 2]).unwrap(), serde_json::json!([1, 2]));
    }
}
