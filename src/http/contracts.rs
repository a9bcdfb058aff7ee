//! The convenience API for people over the contracts: negotiate in one call, follow a
//! negotiation and its events, approve or reject as holder, read agreements, start transfers
//! and refresh their tokens.

use super::auth::{Caller, Holder};
use super::error::{ApiError, Problem};
use crate::contract::state::TransferStep;
use crate::contract::{
    AgreementRecord, ContractError, Event, NegotiationRecord, NegotiationRequest, NegotiationState,
    TransferRecord, TransferState,
};
use crate::node::Node;
use actix_web::http::{StatusCode, header};
use actix_web::{HttpResponse, web};
use serde::Deserialize;
use serde_json::{Value as Json, json};

impl From<ContractError> for ApiError {
    fn from(error: ContractError) -> Self {
        let detail = error.to_string();
        match error {
            ContractError::BadMessage(_) => Self::bad_request(detail),
            ContractError::NotFound { .. } => Self::not_found(detail),
            ContractError::IllegalTransition(_) => Self::new(
                StatusCode::CONFLICT,
                "illegal-transition",
                "Not allowed in this state",
                detail,
            ),
            ContractError::Conflict(_) => {
                Self::new(StatusCode::CONFLICT, "conflict", "Conflict", detail)
            }
            ContractError::Forbidden(_) => Self::forbidden(detail),
            ContractError::Unreachable { .. } => Self::new(
                StatusCode::BAD_GATEWAY,
                "counterparty-unreachable",
                "The other connector could not be reached",
                detail,
            ),
            ContractError::Internal(message) => Self::internal(message),
        }
    }
}

async fn run<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, ContractError> + Send + 'static,
) -> Result<T, ApiError> {
    Ok(web::block(work).await??)
}

fn negotiation_json(record: &NegotiationRecord, agreement: Option<&AgreementRecord>) -> Json {
    let mut view = json!({
        "id": record.id,
        "state": record.state.as_str(),
        "side": record.side.as_str(),
        "dataset": record.dataset,
        "dataset_iri": record.dataset_iri,
        "offer": record.offer,
        "purpose": record.purpose,
        "provider_pid": record.provider_pid,
        "consumer_pid": record.consumer_pid,
        "created": record.created,
        "updated": record.updated,
        "events": format!("/api/negotiations/{}/events", record.id),
    });
    if let Json::Object(fields) = &mut view {
        if let Some(waiting) = &record.waiting {
            fields.insert("waiting".into(), json!(waiting));
        }
        if let Some(refusal) = &record.refusal {
            fields.insert("refusal".into(), json!(refusal));
        }
        if let Some(agreement) = agreement {
            fields.insert("agreement".into(), agreement_json(agreement));
        } else if let Some(id) = &record.agreement {
            fields.insert("agreement_id".into(), json!(id));
        }
    }
    view
}

fn agreement_json(agreement: &AgreementRecord) -> Json {
    json!({
        "id": agreement.id,
        "dataset": agreement.dataset,
        "target": agreement.target,
        "assigner": agreement.assigner,
        "assignee": agreement.assignee,
        "timestamp": agreement.timestamp,
        "expires": agreement.expires,
        "purpose": agreement.purpose,
        "negotiation": agreement.negotiation,
        "policy": agreement.policy,
    })
}

/// The answer to a negotiation: `201` with the agreement once finalized, `202` while it runs
/// or waits, and a problem (`403`) carrying the refusal when it was terminated.
fn negotiation_answer(
    record: &NegotiationRecord,
    agreement: Option<&AgreementRecord>,
) -> HttpResponse {
    let body = negotiation_json(record, agreement);
    match record.state {
        NegotiationState::Finalized => HttpResponse::Created()
            .insert_header((header::LOCATION, format!("/api/negotiations/{}", record.id)))
            .json(body),
        NegotiationState::Terminated => {
            let refusal = record.refusal.clone();
            let detail = refusal.as_ref().map_or_else(
                || "the negotiation was terminated".to_owned(),
                |r| format!("refused by the {}: {}", r.by, r.reason),
            );
            let problem = ApiError::new(
                StatusCode::FORBIDDEN,
                "negotiation-refused",
                "Access refused",
                detail,
            )
            .problem();
            let mut problem = serde_json::to_value(problem).unwrap_or_default();
            if let (Json::Object(fields), Json::Object(view)) = (&mut problem, body) {
                fields.insert(
                    "negotiation".into(),
                    view.get("id").cloned().unwrap_or_default(),
                );
                fields.insert("id".into(), view.get("id").cloned().unwrap_or_default());
                fields.insert("state".into(), json!("TERMINATED"));
                fields.insert(
                    "refusal".into(),
                    view.get("refusal").cloned().unwrap_or_default(),
                );
                fields.insert(
                    "failed_constraints".into(),
                    json!(refusal.map(|r| r.failed_constraints).unwrap_or_default()),
                );
            }
            HttpResponse::Forbidden()
                .content_type("application/problem+json")
                .body(problem.to_string())
        }
        _ => HttpResponse::Accepted()
            .insert_header((header::LOCATION, format!("/api/negotiations/{}", record.id)))
            .json(body),
    }
}

/// Negotiate access to a dataset in one call.
#[utoipa::path(post, path = "/api/negotiations", tag = "contracts",
    request_body(content = NegotiationRequest, description = "The dataset, the offer (optional) and the purpose"),
    responses(
        (status = 201, description = "Agreed: the body carries `agreement` with its `id`", body = serde_json::Value),
        (status = 202, description = "Pending (e.g. waiting for the holder's approval)", body = serde_json::Value),
        (status = 403, description = "Refused, with the failed constraints", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such dataset", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = [])))]
pub async fn negotiate(
    caller: Caller,
    node: web::Data<Node>,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let request: NegotiationRequest = serde_json::from_slice(&body).map_err(|e| {
        ApiError::bad_request(format!(
            "the body must be JSON {{\"dataset\", \"offer\" (optional), \"purpose\", \"provider\" (optional)}}: {e}"
        ))
    })?;
    let contracts = node.contracts.clone();
    let principal = caller.0;
    let (record, agreement) = run(move || {
        let record = contracts.negotiate(&principal, request)?;
        let agreement = match (&record.agreement, record.state) {
            (Some(id), NegotiationState::Finalized) => {
                contracts.agreement_view(&principal, id).ok()
            }
            _ => None,
        };
        Ok((record, agreement))
    })
    .await?;
    Ok(negotiation_answer(&record, agreement.as_ref()))
}

/// A negotiation's current state and, once agreed, the agreement.
#[utoipa::path(get, path = "/api/negotiations/{id}", tag = "contracts",
    params(("id" = String, Path, description = "The negotiation id")),
    responses((status = 200, description = "The negotiation", body = serde_json::Value),
        (status = 404, description = "Not found", body = Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub async fn negotiation(
    caller: Caller,
    node: web::Data<Node>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let contracts = node.contracts.clone();
    let (record, agreement) = run(move || contracts.negotiation_view(&caller.0, &id)).await?;
    Ok(HttpResponse::Ok().json(negotiation_json(&record, agreement.as_ref())))
}

/// A negotiation's event log.
#[utoipa::path(get, path = "/api/negotiations/{id}/events", tag = "contracts",
    params(("id" = String, Path, description = "The negotiation id")),
    responses((status = 200, description = "The events, oldest first", body = Vec<Event>)),
    security(("bearer" = [])))]
pub async fn negotiation_events(
    caller: Caller,
    node: web::Data<Node>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let contracts = node.contracts.clone();
    let events = run(move || contracts.negotiation_events(&caller.0, &id)).await?;
    Ok(HttpResponse::Ok().json(json!({ "events": events })))
}

/// An optional note with a decision.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Note {
    /// Why, in words (shown to both sides).
    pub note: Option<String>,
}

fn note(body: &[u8]) -> Result<Option<String>, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    // The body is optional: none, `null` or {"note": ...}.
    let note: Option<Note> = serde_json::from_slice(body).map_err(|e| {
        ApiError::bad_request(format!("the body is empty or {{\"note\": \"...\"}}: {e}"))
    })?;
    Ok(note
        .and_then(|n| n.note)
        .map(|n| n.chars().take(1000).collect()))
}

/// The holder approves a negotiation that waits for them.
#[utoipa::path(post, path = "/api/negotiations/{id}/approve", tag = "contracts",
    request_body(content = Option<Note>, description = "An optional note: {\"note\": \"...\"}"),
    params(("id" = String, Path, description = "The negotiation id")),
    responses((status = 201, description = "Agreed", body = serde_json::Value),
        (status = 403, description = "Not the dataset's holder", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Nothing waits for approval", body = Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub async fn approve(
    holder: Holder,
    node: web::Data<Node>,
    id: web::Path<String>,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    decide(holder, node, id.into_inner(), true, note(&body)?).await
}

/// The holder rejects a negotiation that waits for them.
#[utoipa::path(post, path = "/api/negotiations/{id}/reject", tag = "contracts",
    request_body(content = Option<Note>, description = "An optional note: {\"note\": \"...\"}"),
    params(("id" = String, Path, description = "The negotiation id")),
    responses((status = 403, description = "Rejected (the refusal) or not the dataset's holder", body = Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub async fn reject(
    holder: Holder,
    node: web::Data<Node>,
    id: web::Path<String>,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    decide(holder, node, id.into_inner(), false, note(&body)?).await
}

async fn decide(
    holder: Holder,
    node: web::Data<Node>,
    id: String,
    approve: bool,
    note: Option<String>,
) -> Result<HttpResponse, ApiError> {
    let contracts = node.contracts.clone();
    let principal = holder.0;
    let (record, agreement) = run(move || {
        let record = contracts.decide_approval(&principal, &id, approve, note)?;
        let agreement = match (&record.agreement, record.state) {
            (Some(id), NegotiationState::Finalized) => {
                contracts.agreement_view(&principal, id).ok()
            }
            _ => None,
        };
        Ok((record, agreement))
    })
    .await?;
    if approve || record.state != NegotiationState::Terminated {
        Ok(negotiation_answer(&record, agreement.as_ref()))
    } else {
        Ok(HttpResponse::Ok().json(negotiation_json(&record, None)))
    }
}

/// The requester withdraws a negotiation.
#[utoipa::path(post, path = "/api/negotiations/{id}/terminate", tag = "contracts",
    request_body(content = Option<Note>, description = "An optional note: {\"note\": \"...\"}"),
    params(("id" = String, Path, description = "The negotiation id")),
    responses((status = 200, description = "Terminated", body = serde_json::Value)),
    security(("bearer" = [])))]
pub async fn terminate(
    caller: Caller,
    node: web::Data<Node>,
    id: web::Path<String>,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let note = note(&body)?;
    let contracts = node.contracts.clone();
    let record = run(move || contracts.terminate_negotiation(&caller.0, &id, note)).await?;
    Ok(HttpResponse::Ok().json(negotiation_json(&record, None)))
}

/// An agreement, for its parties and the dataset's holder.
#[utoipa::path(get, path = "/api/agreements/{id}", tag = "contracts",
    params(("id" = String, Path, description = "The agreement id")),
    responses((status = 200, description = "The agreement", body = serde_json::Value),
        (status = 404, description = "Not found", body = Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub async fn agreement(
    caller: Caller,
    node: web::Data<Node>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let contracts = node.contracts.clone();
    let agreement = run(move || contracts.agreement_view(&caller.0, &id)).await?;
    Ok(HttpResponse::Ok().json(agreement_json(&agreement)))
}

/// What `POST /api/transfers` takes.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TransferRequest {
    /// The agreement id.
    pub agreement: String,
}

fn transfer_json(record: &TransferRecord, events: Option<&[Event]>) -> Json {
    let mut view = json!({
        "id": record.id,
        "state": record.state.as_str(),
        "side": record.side.as_str(),
        "agreement": record.agreement,
        "format": record.format,
        "provider_pid": record.provider_pid,
        "consumer_pid": record.consumer_pid,
        "created": record.created,
        "updated": record.updated,
    });
    if let Json::Object(fields) = &mut view {
        if let Some(reason) = &record.reason {
            fields.insert("reason".into(), json!(reason));
        }
        if let Some(address) = &record.data_address {
            let property = |name: &str| {
                address
                    .get("endpointProperties")
                    .and_then(Json::as_array)
                    .and_then(|props| {
                        props
                            .iter()
                            .find(|p| p.get("name").and_then(Json::as_str) == Some(name))
                    })
                    .and_then(|p| p.get("value"))
                    .cloned()
                    .unwrap_or(Json::Null)
            };
            fields.insert(
                "endpoint".into(),
                address.get("endpoint").cloned().unwrap_or(Json::Null),
            );
            fields.insert("token".into(), property("authorization"));
            let expires_in = property("expiresIn");
            let expires_in = expires_in
                .as_str()
                .and_then(|s| s.parse::<u64>().ok())
                .map_or(expires_in, Json::from);
            fields.insert("expires_in".into(), expires_in);
            fields.insert("refresh".into(), json!({
                "method": "POST",
                "url": property("refreshEndpoint"),
                "note": "send your participant token; the answer is {\"token\", \"expires_in\"}",
            }));
            fields.insert("data_address".into(), address.clone());
        }
        if let Some(events) = events {
            fields.insert("events".into(), json!(events));
        }
    }
    view
}

/// Start a transfer under an agreement: answers the data-plane `endpoint` and `token`.
#[utoipa::path(post, path = "/api/transfers", tag = "contracts",
    request_body(content = TransferRequest, description = "The agreement"),
    responses((status = 201, description = "Started: `endpoint`, `token`, `expires_in`, `refresh`", body = serde_json::Value),
        (status = 202, description = "Requested, not started yet", body = serde_json::Value),
        (status = 403, description = "The agreement no longer permits use", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such agreement", body = Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub async fn start_transfer(
    caller: Caller,
    node: web::Data<Node>,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let request: TransferRequest = serde_json::from_slice(&body).map_err(|e| {
        ApiError::bad_request(format!(
            "the body must be JSON {{\"agreement\": \"<agreement id>\"}}: {e}"
        ))
    })?;
    let contracts = node.contracts.clone();
    let record = run(move || contracts.start_transfer(&caller.0, &request.agreement)).await?;
    let body = transfer_json(&record, None);
    Ok(match record.state {
        TransferState::Started => HttpResponse::Created()
            .insert_header((header::LOCATION, format!("/api/transfers/{}", record.id)))
            .json(body),
        TransferState::Terminated => {
            let detail = format!(
                "the transfer was refused: {}",
                record.reason.as_deref().unwrap_or("no reason given")
            );
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "transfer-refused",
                "Transfer refused",
                detail,
            ));
        }
        _ => HttpResponse::Accepted().json(body),
    })
}

/// A transfer and its events.
#[utoipa::path(get, path = "/api/transfers/{id}", tag = "contracts",
    params(("id" = String, Path, description = "The transfer id")),
    responses((status = 200, description = "The transfer", body = serde_json::Value)),
    security(("bearer" = [])))]
pub async fn transfer(
    caller: Caller,
    node: web::Data<Node>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let contracts = node.contracts.clone();
    let (record, events) = run(move || contracts.transfer_view(&caller.0, &id)).await?;
    Ok(HttpResponse::Ok().json(transfer_json(&record, Some(&events))))
}

/// A fresh data-plane token for a long pull.
#[utoipa::path(post, path = "/api/transfers/{id}/token", tag = "contracts",
    params(("id" = String, Path, description = "The transfer id")),
    responses((status = 200, description = "`token` and `expires_in`", body = serde_json::Value),
        (status = 403, description = "The agreement no longer permits use", body = Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub async fn refresh(
    caller: Caller,
    node: web::Data<Node>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let contracts = node.contracts.clone();
    let token = run(move || contracts.refresh_token(&caller.0, &id)).await?;
    Ok(HttpResponse::Ok().json(token))
}

/// Suspend, resume, complete or terminate a transfer.
#[utoipa::path(post, path = "/api/transfers/{id}/{action}", tag = "contracts",
    request_body(content = Option<Note>, description = "An optional note: {\"note\": \"...\"}"),
    params(("id" = String, Path, description = "The transfer id"),
        ("action" = String, Path, description = "suspend, resume, complete or terminate")),
    responses((status = 200, description = "The transfer", body = serde_json::Value),
        (status = 409, description = "Not allowed in its state", body = Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub async fn transfer_action(
    caller: Caller,
    node: web::Data<Node>,
    path: web::Path<(String, String)>,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let (id, action) = path.into_inner();
    let step = match action.as_str() {
        "suspend" => TransferStep::Suspend,
        "resume" => TransferStep::Start,
        "complete" => TransferStep::Complete,
        "terminate" => TransferStep::Terminate,
        _ => {
            return Err(ApiError::not_found(
                "a transfer can be suspended, resumed, completed or terminated",
            ));
        }
    };
    let note = note(&body)?;
    let contracts = node.contracts.clone();
    let record = run(move || contracts.transfer_action(&caller.0, &id, step, note)).await?;
    Ok(HttpResponse::Ok().json(transfer_json(&record, None)))
}

/// Which dataset's audit trail.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct AuditQuery {
    /// The dataset id.
    pub dataset: String,
}

/// The audit trail of a dataset: every data-plane token issued under its agreements (and,
/// with the data plane, every release), for the dataset's holder only.
#[utoipa::path(get, path = "/api/audit", tag = "contracts",
    params(AuditQuery),
    responses((status = 200, description = "`entries`, oldest first", body = serde_json::Value),
        (status = 404, description = "No such dataset of yours", body = Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub async fn audit(
    holder: Holder,
    node: web::Data<Node>,
    query: web::Query<AuditQuery>,
) -> Result<HttpResponse, ApiError> {
    let node = node.into_inner();
    let dataset = query.into_inner().dataset;
    let entries = web::block(move || {
        let owned = node
            .catalog
            .record(&dataset)?
            .is_some_and(|record| record.holder == holder.0.subject);
        if !owned {
            return Err(ApiError::not_found(format!(
                "you hold no dataset `{}` on this node",
                dataset.chars().take(100).collect::<String>()
            )));
        }
        node.audit.entries_for(&dataset).map_err(ApiError::internal)
    })
    .await??;
    Ok(HttpResponse::Ok().json(json!({ "entries": entries })))
}
