//! The SPARQL 1.1 Protocol, query operation only: `GET` with `query=`, `POST` with an
//! url-encoded form or a direct `application/sparql-query` body. Updates are refused.

use super::error::{ApiError, Problem};
use super::negotiate::choose;
use crate::catalog::sparql::{FormatChoice, QueryRequest, ResultFormat, ServiceAccess};
use crate::node::Node;
use actix_web::http::{StatusCode, header};
use actix_web::{HttpRequest, HttpResponse, web};

/// Largest query text accepted.
const MAX_QUERY_BYTES: usize = 64 * 1024;

/// The protocol's parameters as sent, before the request is checked.
struct Parameters {
    queries: Vec<String>,
    updates: usize,
    default_graphs: Vec<String>,
    named_graphs: Vec<String>,
    format: Option<String>,
}

impl Parameters {
    /// Adds a form body's parameters to the query string's: lists are joined (query string
    /// first), a form's `format` wins.
    fn extend(&mut self, form: Parameters) {
        self.queries.extend(form.queries);
        self.updates += form.updates;
        self.default_graphs.extend(form.default_graphs);
        self.named_graphs.extend(form.named_graphs);
        self.format = form.format.or(self.format.take());
    }
}

/// What one SPARQL protocol request asks for, once its parameters are decoded and checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProtocolRequest {
    /// The one query.
    pub query: String,
    /// `default-graph-uri` values, in the order sent.
    pub default_graphs: Vec<String>,
    /// `named-graph-uri` values, in the order sent.
    pub named_graphs: Vec<String>,
    /// The last `format` (or `output`) value, if any.
    pub format: Option<String>,
}

/// Why a request's parameters are refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParameterError {
    /// A key or value is not UTF-8 once percent-decoded (HTTP 400).
    #[error("a parameter is not valid UTF-8 once decoded")]
    NotUtf8,
    /// An Update was asked for (`update`, `using-graph-uri`, `using-named-graph-uri`; HTTP 403).
    #[error("this endpoint answers queries only")]
    Update,
    /// No `query` parameter (HTTP 400).
    #[error("send exactly one `query` parameter")]
    NoQuery,
    /// More than one `query` parameter (HTTP 400).
    #[error("send exactly one `query` parameter, not several")]
    SeveralQueries,
    /// The query is longer than the endpoint accepts (HTTP 413).
    #[error("the query is longer than {MAX_QUERY_BYTES} bytes")]
    TooLarge,
}

impl From<ParameterError> for ApiError {
    fn from(error: ParameterError) -> Self {
        match error {
            ParameterError::Update => refuse_update(),
            ParameterError::TooLarge => ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "too-large",
                "Query too large",
                error.to_string(),
            ),
            other => ApiError::bad_request(other.to_string()),
        }
    }
}

/// Decodes the parameters of a SPARQL protocol request: its url-encoded query string and,
/// for a form POST, its `application/x-www-form-urlencoded` body (`+` is a space, `%XX` a
/// byte, the result must be UTF-8), into the one query it asks for and its dataset. Refuses
/// Updates, no or several queries and queries over 64 KiB. This is the step both handlers
/// run; it is public (re-exported as `http::decode_sparql_parameters`) so that the
/// `sparql_params` fuzz target reaches exactly this code.
pub fn decode_parameters(
    query_string: &[u8],
    form: Option<&[u8]>,
) -> Result<ProtocolRequest, ParameterError> {
    let mut parameters = parse_pairs(query_string)?;
    if let Some(form) = form {
        parameters.extend(parse_pairs(form)?);
    }
    checked(parameters)
}

/// The one query of `parameters`, or why the request is refused.
fn checked(parameters: Parameters) -> Result<ProtocolRequest, ParameterError> {
    if parameters.updates > 0 {
        return Err(ParameterError::Update);
    }
    let mut queries = parameters.queries;
    let query = match queries.len() {
        1 => queries.pop().unwrap_or_default(),
        0 => return Err(ParameterError::NoQuery),
        _ => return Err(ParameterError::SeveralQueries),
    };
    if query.len() > MAX_QUERY_BYTES {
        return Err(ParameterError::TooLarge);
    }
    Ok(ProtocolRequest {
        query,
        default_graphs: parameters.default_graphs,
        named_graphs: parameters.named_graphs,
        format: parameters.format,
    })
}

fn parse_pairs(encoded: &[u8]) -> Result<Parameters, ParameterError> {
    let mut parameters = Parameters {
        queries: Vec::new(),
        updates: 0,
        default_graphs: Vec::new(),
        named_graphs: Vec::new(),
        format: None,
    };
    for pair in encoded.split(|b| *b == b'&').filter(|p| !p.is_empty()) {
        let mut split = pair.splitn(2, |b| *b == b'=');
        let key = decode(split.next().unwrap_or_default())?;
        let value = decode(split.next().unwrap_or_default())?;
        match key.as_str() {
            "query" => parameters.queries.push(value),
            "update" | "using-graph-uri" | "using-named-graph-uri" => parameters.updates += 1,
            "default-graph-uri" => parameters.default_graphs.push(value),
            "named-graph-uri" => parameters.named_graphs.push(value),
            "format" | "output" => parameters.format = Some(value),
            _ => {}
        }
    }
    Ok(parameters)
}

fn decode(raw: &[u8]) -> Result<String, ParameterError> {
    let plus_as_space: Vec<u8> = raw
        .iter()
        .map(|b| if *b == b'+' { b' ' } else { *b })
        .collect();
    percent_encoding::percent_decode(&plus_as_space)
        .decode_utf8()
        .map(|s| s.into_owned())
        .map_err(|_| ParameterError::NotUtf8)
}

fn refuse_update() -> ApiError {
    ApiError::new(
        StatusCode::FORBIDDEN,
        "sparql-update-refused",
        "SPARQL Update refused",
        "this endpoint answers queries only; publish or change datasets through /api/datasets",
    )
}

fn formats(request: &HttpRequest, format: Option<&str>) -> Result<FormatChoice, ApiError> {
    if let Some(name) = format {
        let chosen = ResultFormat::from_short_name(name).ok_or_else(|| {
            ApiError::bad_request(
                "unknown format; use json, xml, csv, tsv, ttl, nt, jsonld or rdfxml",
            )
        })?;
        return Ok(FormatChoice {
            solutions: if ResultFormat::SOLUTIONS.contains(&chosen) {
                chosen
            } else {
                ResultFormat::Json
            },
            graph: if ResultFormat::GRAPHS.contains(&chosen) {
                chosen
            } else {
                ResultFormat::Turtle
            },
        });
    }
    let accept = request
        .headers()
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok());
    let offers = |list: [ResultFormat; 4]| -> Vec<(ResultFormat, &'static str)> {
        list.iter().map(|f| (*f, f.media_type())).collect()
    };
    let mut solution_offers = offers(ResultFormat::SOLUTIONS);
    solution_offers.push((ResultFormat::Json, "application/json"));
    let graph_offers = offers(ResultFormat::GRAPHS);
    let solutions = choose(accept, &solution_offers);
    let graph = choose(accept, &graph_offers);
    if solutions.is_none() && graph.is_none() {
        let available: Vec<&str> = solution_offers
            .iter()
            .chain(&graph_offers)
            .map(|(_, m)| *m)
            .collect();
        return Err(ApiError::not_acceptable(&available));
    }
    Ok(FormatChoice {
        solutions: solutions.unwrap_or(ResultFormat::Json),
        graph: graph.unwrap_or(ResultFormat::Turtle),
    })
}

/// SPARQL 1.1 query over the public catalogue graphs.
#[utoipa::path(get, path = "/sparql", tag = "sparql",
    params(
        ("query" = String, Query, description = "The SPARQL query"),
        ("default-graph-uri" = Option<Vec<String>>, Query, description = "Default graph IRIs"),
        ("named-graph-uri" = Option<Vec<String>>, Query, description = "Named graph IRIs"),
    ),
    responses(
        (status = 200, description = "Results", content_type = "application/sparql-results+json"),
        (status = 400, description = "Invalid query", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Update refused", body = Problem, content_type = "application/problem+json"),
        (status = 502, description = "A peer's endpoint failed a SERVICE call", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Budget exceeded or busy", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn query_get(
    node: web::Data<Node>,
    request: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let parameters = parse_pairs(request.query_string().as_bytes())?;
    // A browser opening the endpoint without a query gets the editor.
    let wants_html = request
        .headers()
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|accept| accept.contains("text/html"));
    if parameters.queries.is_empty() && parameters.updates == 0 && wants_html {
        return Ok(HttpResponse::SeeOther()
            .insert_header((header::LOCATION, "/sparql-editor"))
            .finish());
    }
    run(node, &request, parameters).await
}

/// SPARQL 1.1 query by POST (form or direct).
#[utoipa::path(post, path = "/sparql", tag = "sparql",
    request_body(content = String, content_type = "application/sparql-query"),
    responses(
        (status = 200, description = "Results", content_type = "application/sparql-results+json"),
        (status = 400, description = "Invalid query", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Update refused", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Unsupported media type", body = Problem, content_type = "application/problem+json"),
        (status = 502, description = "A peer's endpoint failed a SERVICE call", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Budget exceeded or busy", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn query_post(
    node: web::Data<Node>,
    request: HttpRequest,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let content_type = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_owned();
    let charset_ok = content_type
        .split(';')
        .skip(1)
        .filter_map(|p| p.trim().strip_prefix("charset="))
        .all(|c| c.trim_matches('"').eq_ignore_ascii_case("utf-8"));
    let mut parameters = parse_pairs(request.query_string().as_bytes())?;
    match essence.as_str() {
        "application/x-www-form-urlencoded" => {
            parameters.extend(parse_pairs(&body)?);
        }
        "application/sparql-query" => {
            if !charset_ok {
                return Err(ApiError::bad_request("the query must be sent as UTF-8"));
            }
            let text = std::str::from_utf8(&body)
                .map_err(|_| ApiError::bad_request("the query is not valid UTF-8"))?;
            parameters.queries.push(text.to_owned());
        }
        "application/sparql-update" => return Err(refuse_update()),
        _ => {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported-media-type",
                "Unsupported media type",
                "POST a query as application/sparql-query or as an application/x-www-form-urlencoded form with query=",
            ));
        }
    }
    run(node, &request, parameters).await
}

/// What `SERVICE` may reach: the peers configured now (also those added by `POST /api/peers`),
/// under the crawler's address policy and CA file.
pub fn service_access(node: &Node) -> ServiceAccess {
    let peers: Vec<_> = node
        .federation
        .peers()
        .into_iter()
        .map(|status| status.peer)
        .collect();
    ServiceAccess::new(
        &peers,
        node.config.contracts.allow_private_addresses,
        node.config.federation.peer_ca.clone(),
    )
}

async fn run(
    node: web::Data<Node>,
    request: &HttpRequest,
    parameters: Parameters,
) -> Result<HttpResponse, ApiError> {
    let parameters = checked(parameters)?;
    let formats = formats(request, parameters.format.as_deref())?;
    let services = service_access(&node);
    let answer = node
        .sparql
        .execute_federated(
            QueryRequest {
                query: parameters.query,
                default_graphs: parameters.default_graphs,
                named_graphs: parameters.named_graphs,
                formats,
                base_iri: format!("{}/sparql", node.config.public_url()),
            },
            services,
        )
        .await?;
    Ok(HttpResponse::Ok()
        .content_type(answer.media_type)
        .insert_header((header::VARY, "Accept"))
        .body(answer.body))
}
