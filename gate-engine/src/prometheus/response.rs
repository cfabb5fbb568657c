//! The query API's JSON answer, read into typed results.
//!
//! Sample pairs such as `[1793534400.0, "0.5"]` are deserialized by hand straight into two
//! `f64`s without allocating the value string, because a cycle of the daemon parses vectors of
//! thousands of series; only the labels allocate, as a sorted vector ([`Labels`]) rather than
//! a map: a batched answer has one or two labels per series and ten thousand series, and a
//! `BTreeMap` node is half a kilobyte.

use std::fmt;
use std::ops::Index;
use std::time::Duration;

use reqwest::StatusCode;
use serde::de::{self, Deserializer, IgnoredAny, SeqAccess, Visitor};
use serde::Deserialize;

use super::error::{error_type_note, Failure, MAX_BODY_IN_MESSAGE};

/// The parsed answer to an instant query.
#[derive(Debug, Clone, PartialEq)]
pub struct QueryResponse {
    /// The result, by result type.
    pub data: QueryData,
    /// Warnings the server attached (e.g. partial responses from Thanos or Mimir).
    pub warnings: Vec<String>,
    /// Informational notices the server attached (newer Prometheus versions).
    pub infos: Vec<String>,
    /// Time from the first attempt to the parsed answer, retries and backoff included.
    pub elapsed: Duration,
    /// How many HTTP requests this answer took (1 when the first one succeeded).
    pub attempts: u32,
}

/// The `data` of a successful query, by `resultType`.
#[derive(Debug, Clone, PartialEq)]
pub enum QueryData {
    /// An instant vector: one sample per series.
    Vector(Vec<Sample>),
    /// A range vector: several points per series.
    Matrix(Vec<Series>),
    /// A single number.
    Scalar(Point),
    /// A string literal result.
    String {
        /// Unix time of the result, in seconds.
        timestamp: f64,
        /// The string.
        value: String,
    },
}

impl QueryData {
    /// The Prometheus name of the result type: `vector`, `matrix`, `scalar` or `string`.
    pub fn kind(&self) -> &'static str {
        match self {
            QueryData::Vector(_) => "vector",
            QueryData::Matrix(_) => "matrix",
            QueryData::Scalar(_) => "scalar",
            QueryData::String { .. } => "string",
        }
    }

    /// The samples, if this is an instant vector.
    pub fn into_vector(self) -> Option<Vec<Sample>> {
        match self {
            QueryData::Vector(samples) => Some(samples),
            _ => None,
        }
    }

    /// The value, if this is a scalar.
    pub fn scalar(&self) -> Option<f64> {
        match self {
            QueryData::Scalar(point) => Some(point.value),
            _ => None,
        }
    }
}

/// A series' labels, sorted by name (a JSON object read with a repeated name keeps the last
/// value, as a map would).
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize)]
#[serde(transparent)]
pub struct Labels(litemap::LiteMap<String, String>);

impl Labels {
    /// The value of label `name`.
    pub fn get(&self, name: &str) -> Option<&String> {
        self.0.get(name)
    }

    /// Takes label `name` out, returning its value.
    pub fn remove(&mut self, name: &str) -> Option<String> {
        self.0.remove(name)
    }

    /// The labels, by name.
    pub fn iter(&self) -> impl Iterator<Item = (&String, &String)> {
        self.0.iter()
    }

    /// How many labels there are.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl FromIterator<(String, String)> for Labels {
    fn from_iter<I: IntoIterator<Item = (String, String)>>(pairs: I) -> Labels {
        Labels(pairs.into_iter().collect())
    }
}

impl Index<&str> for Labels {
    type Output = String;

    /// The value of label `name`; panics when there is none, like a map's index.
    fn index(&self, name: &str) -> &String {
        self.get(name)
            .unwrap_or_else(|| panic!("no label `{name}` in {}", format_labels(self)))
    }
}

/// One series of an instant vector.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// The series' labels (including `__name__` when the query keeps it).
    pub metric: Labels,
    /// Unix time of the sample, in seconds.
    pub timestamp: f64,
    /// The value; may be NaN or ±Inf.
    pub value: f64,
}

/// One series of a range vector.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    /// The series' labels.
    pub metric: Labels,
    /// The points, in time order.
    pub values: Vec<Point>,
}

/// A timestamped number.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Point {
    /// Unix time, in seconds.
    pub timestamp: f64,
    /// The value; may be NaN or ±Inf.
    pub value: f64,
}

/// The body of a successful answer.
#[derive(Debug)]
pub(super) struct Parsed {
    pub(super) data: QueryData,
    pub(super) warnings: Vec<String>,
    pub(super) infos: Vec<String>,
}

/// Turns a status and body into parsed data or a failure.
pub(super) fn interpret(status: StatusCode, body: &[u8]) -> Result<Parsed, Failure> {
    let code = status.as_u16();
    if !status.is_success() {
        let (error_type, message) = match serde_json::from_slice::<RawResponse>(body) {
            Ok(RawResponse {
                error: Some(error),
                error_type,
                ..
            }) => (error_type, error),
            _ if body.iter().all(u8::is_ascii_whitespace) => (
                None,
                status
                    .canonical_reason()
                    .unwrap_or("no reason given")
                    .to_string(),
            ),
            _ => (None, body_excerpt(body)),
        };
        return Err(Failure::Http {
            status: code,
            error_type,
            message,
        });
    }
    let raw: RawResponse = serde_json::from_slice(body).map_err(|e| Failure::BadResponse {
        status: code,
        reason: format!(
            "not a Prometheus JSON response ({e}): {}",
            body_excerpt(body)
        ),
    })?;
    match raw.status.as_str() {
        "success" => {}
        "error" => {
            return Err(Failure::Http {
                status: code,
                error_type: raw.error_type,
                message: raw
                    .error
                    .unwrap_or_else(|| "no error message given".to_string()),
            })
        }
        other => {
            return Err(Failure::BadResponse {
                status: code,
                reason: format!("unknown status `{}`", other.escape_debug()),
            })
        }
    }
    let data = raw.data.ok_or_else(|| Failure::BadResponse {
        status: code,
        reason: "status is success but there is no `data`".to_string(),
    })?;
    let data = data.into_public().map_err(|reason| Failure::BadResponse {
        status: code,
        reason,
    })?;
    Ok(Parsed {
        data,
        warnings: raw.warnings,
        infos: raw.infos,
    })
}

/// Parses a complete query API body, as the client does for a 2xx answer.
///
/// Exposed for benchmarks and for tools that read saved responses.
pub fn parse_response_body(body: &[u8]) -> Result<(QueryData, Vec<String>), String> {
    match interpret(StatusCode::OK, body) {
        Ok(parsed) => Ok((parsed.data, parsed.warnings)),
        Err(Failure::Http {
            error_type,
            message,
            ..
        }) => Err(format!("error{}: {message}", error_type_note(&error_type))),
        Err(Failure::BadResponse { reason, .. }) => Err(reason),
        Err(other) => Err(format!("{other:?}")),
    }
}

fn body_excerpt(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let one_line = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if one_line.is_empty() {
        return "empty body".to_string();
    }
    match one_line.char_indices().nth(MAX_BODY_IN_MESSAGE) {
        Some((cut, _)) => format!("`{}…`", &one_line[..cut]),
        None => format!("`{one_line}`"),
    }
}

#[derive(Deserialize)]
struct RawResponse {
    status: String,
    #[serde(default)]
    data: Option<RawData>,
    #[serde(default, rename = "errorType")]
    error_type: Option<String>,
    #[serde(default)]
    error: Option<String>,
    #[serde(default)]
    warnings: Vec<String>,
    #[serde(default)]
    infos: Vec<String>,
}

#[derive(Deserialize)]
#[serde(tag = "resultType", content = "result", rename_all = "lowercase")]
enum RawData {
    Vector(Vec<RawSample>),
    Matrix(Vec<RawSeries>),
    Scalar(Point),
    String(StringPoint),
}

#[derive(Deserialize)]
struct RawSample {
    #[serde(default)]
    metric: Labels,
    #[serde(default)]
    value: Option<Point>,
    #[serde(default)]
    histogram: Option<IgnoredAny>,
}

#[derive(Deserialize)]
struct RawSeries {
    #[serde(default)]
    metric: Labels,
    #[serde(default)]
    values: Vec<Point>,
    #[serde(default)]
    histograms: Option<IgnoredAny>,
}

impl RawData {
    fn into_public(self) -> Result<QueryData, String> {
        let histogram_error = |metric: &Labels| {
            format!(
                "series {} holds native histogram samples, which gate cannot use as SLI counters",
                format_labels(metric)
            )
        };
        Ok(match self {
            RawData::Vector(raw) => {
                let mut samples = Vec::with_capacity(raw.len());
                for sample in raw {
                    match sample.value {
                        Some(point) => samples.push(Sample {
                            metric: sample.metric,
                            timestamp: point.timestamp,
                            value: point.value,
                        }),
                        None if sample.histogram.is_some() => {
                            return Err(histogram_error(&sample.metric))
                        }
                        None => {
                            return Err(format!(
                                "series {} has no `value`",
                                format_labels(&sample.metric)
                            ))
                        }
                    }
                }
                QueryData::Vector(samples)
            }
            RawData::Matrix(raw) => {
                let mut series = Vec::with_capacity(raw.len());
                for s in raw {
                    if s.histograms.is_some() {
                        return Err(histogram_error(&s.metric));
                    }
                    series.push(Series {
                        metric: s.metric,
                        values: s.values,
                    });
                }
                QueryData::Matrix(series)
            }
            RawData::Scalar(point) => QueryData::Scalar(point),
            RawData::String(StringPoint { timestamp, value }) => {
                QueryData::String { timestamp, value }
            }
        })
    }
}

fn format_labels(metric: &Labels) -> String {
    let inner: Vec<String> = metric.iter().map(|(k, v)| format!("{k}={v:?}")).collect();
    format!("{{{}}}", inner.join(", "))
}

impl<'de> Deserialize<'de> for Point {
    /// Reads `[<unix seconds>, "<value>"]` without allocating the value string.
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct PointVisitor;
        impl<'de> Visitor<'de> for PointVisitor {
            type Value = Point;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a [timestamp, \"value\"] pair")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Point, A::Error> {
                let timestamp: f64 = seq
                    .next_element()?
                    .ok_or_else(|| de::Error::invalid_length(0, &self))?;
                let SampleValue(value) = seq
                    .next_element()?
                    .ok_or_else(|| de::Error::invalid_length(1, &self))?;
                if seq.next_element::<IgnoredAny>()?.is_some() {
                    return Err(de::Error::invalid_length(3, &self));
                }
                Ok(Point { timestamp, value })
            }
        }
        deserializer.deserialize_seq(PointVisitor)
    }
}

/// A sample value: a string holding a float (`"1.5"`, `"NaN"`, `"+Inf"`, `"-Inf"`), read
/// from a borrowed `&str` when the JSON has no escapes.
struct SampleValue(f64);

impl<'de> Deserialize<'de> for SampleValue {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ValueVisitor;
        impl<'de> Visitor<'de> for ValueVisitor {
            type Value = SampleValue;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a sample value string such as \"1.5\", \"NaN\" or \"+Inf\"")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<SampleValue, E> {
                parse_sample_value(v)
                    .map(SampleValue)
                    .ok_or_else(|| E::invalid_value(de::Unexpected::Str(v), &self))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<SampleValue, E> {
                Ok(SampleValue(v))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<SampleValue, E> {
                Ok(SampleValue(v as f64))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<SampleValue, E> {
                Ok(SampleValue(v as f64))
            }
        }
        deserializer.deserialize_any(ValueVisitor)
    }
}

/// Parses Prometheus' float spelling: Go's `strconv.FormatFloat` output plus `NaN`, `+Inf`,
/// `-Inf`.
fn parse_sample_value(text: &str) -> Option<f64> {
    match text {
        "NaN" => Some(f64::NAN),
        "+Inf" | "Inf" => Some(f64::INFINITY),
        "-Inf" => Some(f64::NEG_INFINITY),
        _ => text.parse::<f64>().ok(),
    }
}

/// `[<unix seconds>, "<string>"]`, the result of a string query.
struct StringPoint {
    timestamp: f64,
    value: String,
}

impl<'de> Deserialize<'de> for StringPoint {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct StringPointVisitor;
        impl<'de> Visitor<'de> for StringPointVisitor {
            type Value = StringPoint;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a [timestamp, \"string\"] pair")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<StringPoint, A::Error> {
                let timestamp: f64 = seq
                    .next_element()?
                    .ok_or_else(|| de::Error::invalid_length(0, &self))?;
                let value: String = seq
                    .next_element()?
                    .ok_or_else(|| de::Error::invalid_length(1, &self))?;
                if seq.next_element::<IgnoredAny>()?.is_some() {
                    return Err(de::Error::invalid_length(3, &self));
                }
                Ok(StringPoint { timestamp, value })
            }
        }
        deserializer.deserialize_seq(StringPointVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_looked_up_by_name_and_a_repeated_name_keeps_its_last_value() {
        let body = br#"{"status":"success","data":{"resultType":"vector","result":[
            {"metric":{"zone":"b","train_id":"t-1","zone":"c","code":"500"},"value":[1,"2"]}]}}"#;
        let (data, _) = parse_response_body(body).expect("vector");
        let mut labels = data.into_vector().expect("a vector").remove(0).metric;
        let names: Vec<&str> = labels.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(names, ["code", "train_id", "zone"]);
        assert_eq!(labels.get("zone").map(String::as_str), Some("c"));
        assert_eq!(labels["code"], "500");
        assert_eq!(labels.get("job"), None);
        assert_eq!(labels.remove("train_id").as_deref(), Some("t-1"));
        assert_eq!((labels.len(), labels.get("train_id")), (2, None));
    }

    #[test]
    fn parses_matrix_scalar_and_string_results() {
        let matrix = br#"{"status":"success","data":{"resultType":"matrix","result":[
            {"metric":{"__name__":"up","job":"p"},"values":[[1000,"1"],[1015.5,"0"]]}]}}"#;
        let (data, _) = parse_response_body(matrix).expect("matrix");
        assert_eq!(
            data,
            QueryData::Matrix(vec![Series {
                metric: [
                    ("job".to_string(), "p".to_string()),
                    ("__name__".to_string(), "up".to_string()),
                ]
                .into_iter()
                .collect(),
                values: vec![
                    Point {
                        timestamp: 1000.0,
                        value: 1.0
                    },
                    Point {
                        timestamp: 1015.5,
                        value: 0.0
                    }
                ],
            }])
        );

        let scalar =
            br#"{"status":"success","data":{"resultType":"scalar","result":[1793534400,"0.25"]}}"#;
        let (data, _) = parse_response_body(scalar).expect("scalar");
        assert_eq!(data.kind(), "scalar");
        assert_eq!(data.scalar(), Some(0.25));

        let string =
            br#"{"status":"success","data":{"resultType":"string","result":[12,"hello \"x\""]}}"#;
        let (data, _) = parse_response_body(string).expect("string");
        assert_eq!(
            data,
            QueryData::String {
                timestamp: 12.0,
                value: "hello \"x\"".to_string()
            }
        );
    }

    #[test]
    fn rejects_malformed_results_with_a_reason() {
        let cases: [(&[u8], &str); 5] = [
            (br#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1,"abc"]}]}}"#, "abc"),
            (br#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1,"1",2]}]}}"#, "invalid length"),
            (br#"{"status":"success","data":{"resultType":"tensor","result":[]}}"#, "tensor"),
            (br#"{"status":"success"}"#, "no `data`"),
            (br#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{"a":"b"},"histogram":[1,{"count":"2"}]}]}}"#, "native histogram"),
        ];
        for (body, expected) in cases {
            let err = parse_response_body(body).expect_err("malformed");
            assert!(err.contains(expected), "{err} should mention {expected}");
        }
    }
}
