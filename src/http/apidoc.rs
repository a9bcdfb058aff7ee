//! What every operation of the OpenAPI document may answer besides its own outcomes: the
//! refusals the shared extractors and error handlers produce (problem+json), added where an
//! operation's own annotations leave them out, so that the document lists every status the
//! node sends (Schemathesis checks it, `tests/integration/openapi_fuzz.rs`).

use utoipa::openapi::path::{Operation, ParameterIn};
use utoipa::openapi::{ContentBuilder, Ref, RefOr, ResponseBuilder};

/// Adds 400 (malformed input), 401/403 (no valid token, a role or agreement that does not
/// permit this), 404 (no such resource named in the path) and 415 (a body of a media type the
/// operation does not take) where an operation can answer them and does not say so.
pub(super) struct ErrorResponses;

impl utoipa::Modify for ErrorResponses {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        for item in openapi.paths.paths.values_mut() {
            let shared_path_params = item.parameters.as_ref().is_some_and(|p| has_path(p));
            for operation in [
                &mut item.get,
                &mut item.put,
                &mut item.post,
                &mut item.delete,
                &mut item.head,
                &mut item.patch,
            ]
            .into_iter()
            .flatten()
            {
                add_refusals(operation, shared_path_params);
            }
        }
    }
}

fn has_path(parameters: &[RefOr<utoipa::openapi::path::Parameter>]) -> bool {
    parameters
        .iter()
        .any(|p| matches!(p, RefOr::T(p) if p.parameter_in == ParameterIn::Path))
}

fn add_refusals(operation: &mut Operation, shared_path_params: bool) {
    let params = operation.parameters.as_deref().unwrap_or_default();
    let path = shared_path_params || has_path(params);
    let body = operation.request_body.is_some();
    let secured = operation.security.as_ref().is_some_and(|s| !s.is_empty());
    let mut add = |status: &str, description: &str| {
        operation
            .responses
            .responses
            .entry(status.to_owned())
            .or_insert_with(|| {
                RefOr::T(
                    ResponseBuilder::new()
                        .description(description)
                        .content(
                            "application/problem+json",
                            ContentBuilder::new()
                                .schema(Some(Ref::from_schema_name("Problem")))
                                .build(),
                        )
                        .build(),
                )
            });
    };
    if !params.is_empty() || path || body {
        add("400", "Malformed request (a parameter or the body)");
    }
    if secured {
        add("401", "No valid bearer token");
        add(
            "403",
            "The caller's role, or the agreement, does not permit this",
        );
    }
    if path {
        add("404", "No such resource (or none visible to this caller)");
    }
    if body {
        add(
            "415",
            "The body is of a media type this operation does not take",
        );
    }
}
