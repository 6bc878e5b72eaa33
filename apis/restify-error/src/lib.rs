//! Restify-style error bodies, `{"code": "ResourceNotFound", "message": ...}`,
//! as every Triton Node.js API (IMGAPI, SAPI, VMAPI, NAPI, PAPI, CNAPI)
//! sends them and every Triton client parses them. The Dropshot servers and
//! API traits that stand in for those services use [`RestError`] as their
//! error type, so their bodies have the same shape, and start through
//! [`start_server`] so that the errors Dropshot raises itself (unknown
//! route, wrong method) have it too.

mod server;

pub use server::{RestServer, StartError, start_loopback, start_server};

use dropshot::{ErrorStatusCode, HttpError, HttpResponseError};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A restify-style error body: `code` is a restify/Triton code name
/// (`ResourceNotFound`, `ValidationFailed`, `InvalidParameter`, ...).
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct RestError {
    pub code: String,
    pub message: String,
    /// Not on the wire: clients read the status from the response.
    #[serde(skip)]
    status: Option<ErrorStatusCode>,
}

impl RestError {
    pub fn new(status: ErrorStatusCode, code: &str, message: impl Into<String>) -> Self {
        RestError {
            code: code.to_string(),
            message: message.into(),
            status: Some(status),
        }
    }

    /// 404 `ResourceNotFound`: `what` names the missing thing, e.g.
    /// `image 01b2c898-...`.
    pub fn not_found(what: impl std::fmt::Display) -> Self {
        Self::new(
            ErrorStatusCode::NOT_FOUND,
            "ResourceNotFound",
            format!("{what} was not found"),
        )
    }

    /// 422 `ValidationFailed`, as IMGAPI answers a bad manifest.
    pub fn validation(message: impl Into<String>) -> Self {
        Self::from_code("ValidationFailed", message)
    }

    /// 422 `InvalidParameter` (IMGAPI's status for it).
    pub fn invalid_parameter(message: impl Into<String>) -> Self {
        Self::from_code("InvalidParameter", message)
    }

    /// 409 `MissingParameter`, restify's status for it (SAPI, VMAPI, NAPI).
    pub fn missing_parameter(message: impl Into<String>) -> Self {
        Self::from_code("MissingParameter", message)
    }

    /// 409 `InvalidArgument`, restify's status for it (SAPI, VMAPI, NAPI).
    pub fn invalid_argument(message: impl Into<String>) -> Self {
        Self::from_code("InvalidArgument", message)
    }

    /// 400 `Upload`: IMGAPI's code for a failed AddImageFile.
    pub fn upload(message: impl Into<String>) -> Self {
        Self::from_code("Upload", message)
    }

    /// 400 `Download`: IMGAPI's code for a failed GetImageFile.
    pub fn download(message: impl Into<String>) -> Self {
        Self::from_code("Download", message)
    }

    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::from_code("UnauthorizedError", message)
    }

    /// 503 `RemoteSourceError`: an IMGAPI import source failed.
    pub fn remote_source(message: impl Into<String>) -> Self {
        Self::from_code("RemoteSourceError", message)
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Self::from_code("InternalError", message)
    }

    /// The error for a restify/Triton code name, with the status those
    /// services send it with (`GET /ping?error=` and fault injection need
    /// this). Unknown codes are 500s.
    pub fn from_code(code: &str, message: impl Into<String>) -> Self {
        Self::new(status_of(code), code, message)
    }

    pub fn status(&self) -> ErrorStatusCode {
        self.status
            .unwrap_or(ErrorStatusCode::INTERNAL_SERVER_ERROR)
    }
}

/// The HTTP status Triton's services (restify's built-in errors and the
/// services' own codes) send with a code.
fn status_of(code: &str) -> ErrorStatusCode {
    match code {
        "ValidationFailed"
        | "InvalidParameter"
        | "ImageFilesImmutable"
        | "ImageAlreadyActivated"
        | "NoActivationNoFile"
        | "OwnerDoesNotExist"
        | "AccountDoesNotExist"
        | "NotImageOwner"
        | "NotMantaPathOwner"
        | "OriginDoesNotExist"
        | "OriginIsNotActive"
        | "InsufficientServerVersion"
        | "ImageHasDependentImages"
        | "UnprocessableEntityError" => ErrorStatusCode::UNPROCESSABLE_ENTITY,
        "OperatorOnly" | "ForbiddenError" | "NotAuthorized" => ErrorStatusCode::FORBIDDEN,
        "ImageUuidAlreadyExists"
        | "MissingParameter"
        | "InvalidArgument"
        | "InvalidContent"
        | "ConflictError"
        | "InUseError"
        | "DuplicateParameter" => ErrorStatusCode::CONFLICT,
        "Upload" | "Download" | "NotImplemented" | "InvalidHeader" | "BadRequestError"
        | "BadDigest" | "InvalidVersion" | "RequestThrottled" => ErrorStatusCode::BAD_REQUEST,
        "StorageIsDown"
        | "StorageUnsupported"
        | "RemoteSourceError"
        | "ServiceUnavailableError" => ErrorStatusCode::SERVICE_UNAVAILABLE,
        "NotAvailable" | "NotImplementedError" => ErrorStatusCode::NOT_IMPLEMENTED,
        "ResourceNotFound" | "NotFoundError" => ErrorStatusCode::NOT_FOUND,
        "MethodNotAllowedError" | "MethodNotAllowed" => ErrorStatusCode::METHOD_NOT_ALLOWED,
        "NotAcceptableError" => ErrorStatusCode::NOT_ACCEPTABLE,
        "PayloadTooLargeError" | "RequestEntityTooLarge" => ErrorStatusCode::PAYLOAD_TOO_LARGE,
        "UnsupportedMediaTypeError" => ErrorStatusCode::UNSUPPORTED_MEDIA_TYPE,
        "PreconditionFailedError" => ErrorStatusCode::PRECONDITION_FAILED,
        "UnauthorizedError" | "InvalidCredentials" => ErrorStatusCode::UNAUTHORIZED,
        _ => ErrorStatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// The restify code name of a status, for errors that carry only a status
/// (Dropshot's own extractor and routing errors).
pub fn code_of_status(status: u16) -> &'static str {
    match status {
        400 => "BadRequestError",
        401 => "UnauthorizedError",
        403 => "ForbiddenError",
        404 => "ResourceNotFound",
        405 => "MethodNotAllowedError",
        406 => "NotAcceptableError",
        409 => "ConflictError",
        412 => "PreconditionFailedError",
        413 => "PayloadTooLargeError",
        415 => "UnsupportedMediaTypeError",
        422 => "UnprocessableEntityError",
        501 => "NotImplementedError",
        503 => "ServiceUnavailableError",
        _ => "InternalError",
    }
}

impl std::fmt::Display for RestError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

impl std::error::Error for RestError {}

/// Errors from Dropshot's extractors (bad query, bad body) get the restify
/// code for their status, so every error body has the same shape.
impl From<HttpError> for RestError {
    fn from(e: HttpError) -> Self {
        RestError::from_dropshot(e.status_code, e.external_message)
    }
}

impl RestError {
    /// The restify error for one Dropshot raised itself. Dropshot's own
    /// `error_code`s (`Internal`, ...) are not restify codes: the code comes
    /// from the status.
    pub fn from_dropshot(status: ErrorStatusCode, message: String) -> Self {
        // Triton's services answer a bad query parameter with 422
        // InvalidParameter.
        if status.as_u16() == 400 && message.starts_with("unable to parse query") {
            return RestError::invalid_parameter(message);
        }
        RestError::new(status, code_of_status(status.as_u16()), message)
    }
}

impl HttpResponseError for RestError {
    fn status_code(&self) -> ErrorStatusCode {
        self.status()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_is_code_and_message_only() {
        let e = RestError::not_found("image 1");
        assert_eq!(e.status().as_u16(), 404);
        let body = serde_json::to_value(&e).unwrap();
        assert_eq!(
            body,
            serde_json::json!({"code": "ResourceNotFound", "message": "image 1 was not found"})
        );
    }

    #[test]
    fn restify_statuses() {
        assert_eq!(RestError::missing_parameter("x").status().as_u16(), 409);
        assert_eq!(RestError::invalid_argument("x").status().as_u16(), 409);
        assert_eq!(RestError::invalid_parameter("x").status().as_u16(), 422);
        assert_eq!(RestError::from_code("Nope", "x").status().as_u16(), 500);
    }

    #[test]
    fn dropshot_errors_get_restify_codes() {
        let e = RestError::from(HttpError::for_bad_request(
            None,
            "unable to parse query: x".into(),
        ));
        assert_eq!(
            (e.code.as_str(), e.status().as_u16()),
            ("InvalidParameter", 422)
        );
        let e = RestError::from(HttpError::for_not_found(None, "gone".into()));
        assert_eq!(e.code, "ResourceNotFound");
    }
}
