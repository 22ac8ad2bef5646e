//! placeholder until written
/// v2
pub fn v2() -> serde_json::Value {
    serde_json::Value::Null
}
/// idx
pub fn v3_index() -> serde_json::Value {
    serde_json::Value::Null
}
/// v3
pub fn v3(_g: &str, _v: &str) -> Option<serde_json::Value> {
    None
}
