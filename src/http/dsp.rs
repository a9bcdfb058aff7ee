//! The Dataspace Protocol 2025-1 HTTPS binding under `/dsp`, and its version document.
//! Errors here are the protocol's own error messages (`CatalogError`,
//! `ContractNegotiationError`, `TransferError`), not problem+json.

use super::auth::principal;
use crate::contract::ContractError;
use crate::contract::messages::{self, MAX_MESSAGE_BYTES};
use crate::identity::Principal;
use crate::node::Node;
use actix_web::http::{StatusCode, header};
use actix_web::{HttpRequest, HttpResponse, ResponseError, web};
use serde::Deserialize;
use serde_json::{Value as Json, json};

/// Which protocol error type an endpoint answers with.
#[derive(Debug, Clone, Copy)]
enum Area {
    Catalog,
    Negotiation,
    Transfer,
}

/// A protocol error on its way to the wire.
#[derive(Debug)]
pub struct DspError {
    status: StatusCode,
    body: Json,
}

impl std::fmt::Display for DspError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.status, self.body)
    }
}

impl ResponseError for DspError {
    fn status_code(&self) -> StatusCode {
        self.status
    }

    fn error_response(&self) -> HttpResponse {
        let mut response = HttpResponse::build(self.status);
        if self.status == StatusCode::UNAUTHORIZED {
            response.insert_header((header::WWW_AUTHENTICATE, "Bearer realm=\"agora\""));
        }
        response
            .content_type("application/json")
            .body(self.body.to_string())
    }
}

impl DspError {
    fn new(area: Area, status: StatusCode, pids: Option<(&str, &str)>, detail: &str) -> Self {
        let (kind, pids) = match area {
            Area::Catalog => ("CatalogError", None),
            Area::Negotiation => ("ContractNegotiationError", Some(pids.unwrap_or(("", "")))),
            Area::Transfer => ("TransferError", Some(pids.unwrap_or(("", "")))),
        };
        Self {
            status,
            body: messages::error_json(kind, pids, &status.as_u16().to_string(), detail),
        }
    }

    fn from_contract(area: Area, pids: Option<(&str, &str)>, error: ContractError) -> Self {
        let status = match &error {
            ContractError::BadMessage(_) | ContractError::IllegalTransition(_) => {
                StatusCode::BAD_REQUEST
            }
            ContractError::NotFound { .. } => StatusCode::NOT_FOUND,
            ContractError::Conflict(_) => StatusCode::CONFLICT,
            ContractError::Forbidden(_) => StatusCode::FORBIDDEN,
            ContractError::Unreachable { .. } => StatusCode::BAD_GATEWAY,
            ContractError::Internal(message) => {
                tracing::error!(%message, "internal contracts error");
                return Self::new(
                    area,
                    StatusCode::INTERNAL_SERVER_ERROR,
                    pids,
                    "the node failed to handle this message; the operator can find it in the logs",
                );
            }
        };
        Self::new(area, status, pids, &error.to_string())
    }
}

fn caller(request: &HttpRequest, area: Area) -> Result<Principal, DspError> {
    principal(request).map_err(|e| DspError::new(area, e.status_code(), None, &e.problem().detail))
}

fn read(area: Area, body: &[u8], expected: &[&str]) -> Result<messages::Message, DspError> {
    if body.len() > MAX_MESSAGE_BYTES {
        return Err(DspError::new(
            area,
            StatusCode::PAYLOAD_TOO_LARGE,
            None,
            "the message is larger than 1 MiB",
        ));
    }
    messages::parse(body, expected)
        .map_err(|e| DspError::new(area, StatusCode::BAD_REQUEST, None, &e.0))
}

/// The pids a message names, for error bodies.
fn pids_of(body: &[u8]) -> (String, String) {
    let value: Json = serde_json::from_slice(body).unwrap_or(Json::Null);
    let get = |key: &str| {
        value
            .get(key)
            .and_then(Json::as_str)
            .unwrap_or_default()
            .chars()
            .take(200)
            .collect()
    };
    (get("providerPid"), get("consumerPid"))
}

async fn blocking<T: Send + 'static>(
    area: Area,
    pids: Option<(String, String)>,
    work: impl FnOnce() -> Result<T, ContractError> + Send + 'static,
) -> Result<T, DspError> {
    match web::block(work).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(error)) => Err(DspError::from_contract(
            area,
            pids.as_ref().map(|(p, c)| (p.as_str(), c.as_str())),
            error,
        )),
        Err(error) => Err(DspError::from_contract(
            area,
            None,
            ContractError::Internal(error.to_string()),
        )),
    }
}

fn json(status: StatusCode, body: &Json) -> HttpResponse {
    HttpResponse::build(status)
        .content_type("application/json")
        .body(body.to_string())
}

/// `GET /.well-known/dspace-version`.
pub async fn version(node: web::Data<Node>) -> HttpResponse {
    json(
        StatusCode::OK,
        &json!({
            "protocolVersions": [{
                "version": "2025-1",
                "path": "/dsp",
                "binding": "HTTPS",
                "auth": {"protocol": "OAuth", "version": "2", "profile": ["bearer-jwt"]},
            }],
            "participantId": node.id,
        }),
    )
}

/// Paging of the DSP catalogue.
#[derive(Debug, Deserialize)]
pub struct Paging {
    offset: Option<usize>,
    limit: Option<usize>,
}

/// Largest page of a DSP catalogue.
const MAX_CATALOG_PAGE: usize = 1000;

/// `POST /dsp/catalog/request`.
pub async fn catalog_request(
    node: web::Data<Node>,
    request: HttpRequest,
    paging: web::Query<Paging>,
    body: web::Bytes,
) -> Result<HttpResponse, DspError> {
    let principal = caller(&request, Area::Catalog)?;
    read(Area::Catalog, &body, &["CatalogRequestMessage"])?;
    let offset = paging.offset.unwrap_or(0);
    let limit = paging.limit.unwrap_or(100);
    if limit == 0 || limit > MAX_CATALOG_PAGE {
        return Err(DspError::new(
            Area::Catalog,
            StatusCode::BAD_REQUEST,
            None,
            &format!("`limit` is between 1 and {MAX_CATALOG_PAGE}"),
        ));
    }
    let contracts = node.contracts.clone();
    let (catalog, total) = blocking(Area::Catalog, None, move || {
        contracts.dsp_catalog(&principal, offset, limit)
    })
    .await?;
    let base = format!("{}/dsp/catalog/request", node.config.public_url());
    let mut links = Vec::new();
    if offset + limit < total {
        links.push(format!(
            "<{base}?offset={}&limit={limit}>; rel=\"next\"",
            offset + limit
        ));
    }
    if offset > 0 {
        links.push(format!(
            "<{base}?offset={}&limit={limit}>; rel=\"prev\"",
            offset.saturating_sub(limit)
        ));
    }
    let mut response = HttpResponse::Ok();
    if !links.is_empty() {
        response.insert_header((header::LINK, links.join(", ")));
    }
    Ok(response
        .insert_header(("X-Total-Count", total.to_string()))
        .content_type("application/json")
        .body(catalog.to_string()))
}

/// `GET /dsp/catalog/datasets/{id}`.
pub async fn dataset(
    node: web::Data<Node>,
    request: HttpRequest,
    id: web::Path<String>,
) -> Result<HttpResponse, DspError> {
    let principal = caller(&request, Area::Catalog)?;
    let contracts = node.contracts.clone();
    let id = id.into_inner();
    let dataset = blocking(Area::Catalog, None, move || {
        contracts.dsp_dataset(&principal, &id)
    })
    .await?;
    Ok(json(StatusCode::OK, &dataset))
}

/// `POST /dsp/negotiations/request`: a consumer starts a negotiation.
pub async fn negotiation_request(
    node: web::Data<Node>,
    request: HttpRequest,
    body: web::Bytes,
) -> Result<HttpResponse, DspError> {
    let principal = caller(&request, Area::Negotiation)?;
    let (provider, consumer) = pids_of(&body);
    let message = read(Area::Negotiation, &body, &["ContractRequestMessage"])
        .map_err(|e| with_pids(e, &provider, &consumer))?;
    let contracts = node.contracts.clone();
    let answer = blocking(Area::Negotiation, Some((provider, consumer)), move || {
        contracts.dsp_initial_request(&principal, message)
    })
    .await?;
    Ok(created(&node, "negotiations", &answer))
}

/// `POST /dsp/negotiations/offers`: a provider starts a negotiation.
pub async fn negotiation_offer(
    node: web::Data<Node>,
    request: HttpRequest,
    body: web::Bytes,
) -> Result<HttpResponse, DspError> {
    let principal = caller(&request, Area::Negotiation)?;
    let (provider, consumer) = pids_of(&body);
    let message = read(Area::Negotiation, &body, &["ContractOfferMessage"])
        .map_err(|e| with_pids(e, &provider, &consumer))?;
    let contracts = node.contracts.clone();
    let answer = blocking(Area::Negotiation, Some((provider, consumer)), move || {
        contracts.dsp_initial_offer(&principal, message)
    })
    .await?;
    Ok(created(&node, "negotiations", &answer))
}

fn created(node: &Node, kind: &str, answer: &Json) -> HttpResponse {
    let own = if answer.get("@type").and_then(Json::as_str) == Some("ContractNegotiation")
        && answer.get("state").and_then(Json::as_str) == Some("OFFERED")
    {
        answer.get("consumerPid")
    } else {
        answer.get("providerPid")
    };
    let mut response = HttpResponse::Created();
    if let Some(pid) = own.and_then(Json::as_str) {
        response.insert_header((
            header::LOCATION,
            format!("{}/dsp/{kind}/{pid}", node.config.public_url()),
        ));
    }
    response
        .content_type("application/json")
        .body(answer.to_string())
}

fn with_pids(mut error: DspError, provider: &str, consumer: &str) -> DspError {
    if let Json::Object(fields) = &mut error.body {
        fields.insert("providerPid".into(), json!(provider));
        fields.insert("consumerPid".into(), json!(consumer));
    }
    error
}

/// `GET /dsp/negotiations/{pid}`.
pub async fn negotiation(
    node: web::Data<Node>,
    request: HttpRequest,
    pid: web::Path<String>,
) -> Result<HttpResponse, DspError> {
    let principal = caller(&request, Area::Negotiation)?;
    let contracts = node.contracts.clone();
    let pid = pid.into_inner();
    let answer = blocking(Area::Negotiation, None, move || {
        contracts.dsp_negotiation(&principal, &pid)
    })
    .await?;
    Ok(json(StatusCode::OK, &answer))
}

/// `POST /dsp/negotiations/{pid}/{request|events|agreement/verification|termination|offers|agreement}`.
pub async fn negotiation_message(
    node: web::Data<Node>,
    request: HttpRequest,
    path: web::Path<(String, String)>,
    body: web::Bytes,
) -> Result<HttpResponse, DspError> {
    let (pid, action) = path.into_inner();
    let expected = match action.as_str() {
        "request" => "ContractRequestMessage",
        "events" => "ContractNegotiationEventMessage",
        "agreement/verification" => "ContractAgreementVerificationMessage",
        "termination" => "ContractNegotiationTerminationMessage",
        "offers" => "ContractOfferMessage",
        "agreement" => "ContractAgreementMessage",
        _ => {
            return Err(DspError::new(
                Area::Negotiation,
                StatusCode::NOT_FOUND,
                None,
                "no such negotiation endpoint; see DSP 2025-1 §contract negotiation HTTPS binding",
            ));
        }
    };
    let principal = caller(&request, Area::Negotiation)?;
    let (provider, consumer) = pids_of(&body);
    let message = read(Area::Negotiation, &body, &[expected])
        .map_err(|e| with_pids(e, &provider, &consumer))?;
    let contracts = node.contracts.clone();
    blocking(Area::Negotiation, Some((provider, consumer)), move || {
        contracts.dsp_negotiation_message(&principal, &pid, message)
    })
    .await?;
    Ok(HttpResponse::Ok().finish())
}

/// `POST /dsp/transfers/request`.
pub async fn transfer_request(
    node: web::Data<Node>,
    request: HttpRequest,
    body: web::Bytes,
) -> Result<HttpResponse, DspError> {
    let principal = caller(&request, Area::Transfer)?;
    let (provider, consumer) = pids_of(&body);
    let message = read(Area::Transfer, &body, &["TransferRequestMessage"])
        .map_err(|e| with_pids(e, &provider, &consumer))?;
    let contracts = node.contracts.clone();
    let answer = blocking(Area::Transfer, Some((provider, consumer)), move || {
        contracts.dsp_transfer_request(&principal, message)
    })
    .await?;
    Ok(created(&node, "transfers", &answer))
}

/// `GET /dsp/transfers/{pid}`.
pub async fn transfer(
    node: web::Data<Node>,
    request: HttpRequest,
    pid: web::Path<String>,
) -> Result<HttpResponse, DspError> {
    let principal = caller(&request, Area::Transfer)?;
    let contracts = node.contracts.clone();
    let pid = pid.into_inner();
    let answer = blocking(Area::Transfer, None, move || {
        contracts.dsp_transfer(&principal, &pid)
    })
    .await?;
    Ok(json(StatusCode::OK, &answer))
}

/// `POST /dsp/transfers/{pid}/{start|completion|suspension|termination}`.
pub async fn transfer_message(
    node: web::Data<Node>,
    request: HttpRequest,
    path: web::Path<(String, String)>,
    body: web::Bytes,
) -> Result<HttpResponse, DspError> {
    let (pid, action) = path.into_inner();
    let expected = match action.as_str() {
        "start" => "TransferStartMessage",
        "completion" => "TransferCompletionMessage",
        "suspension" => "TransferSuspensionMessage",
        "termination" => "TransferTerminationMessage",
        _ => {
            return Err(DspError::new(
                Area::Transfer,
                StatusCode::NOT_FOUND,
                None,
                "no such transfer endpoint; see DSP 2025-1 §transfer process HTTPS binding",
            ));
        }
    };
    let principal = caller(&request, Area::Transfer)?;
    let (provider, consumer) = pids_of(&body);
    let message =
        read(Area::Transfer, &body, &[expected]).map_err(|e| with_pids(e, &provider, &consumer))?;
    let contracts = node.contracts.clone();
    blocking(Area::Transfer, Some((provider, consumer)), move || {
        contracts.dsp_transfer_message(&principal, &pid, message)
    })
    .await?;
    Ok(HttpResponse::Ok().finish())
}
