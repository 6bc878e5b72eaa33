//! One line for a failed call through any of the Progenitor clients: what
//! came back (status and the API's own error, or the transport's chain of
//! causes with a hint), whether the transfer broke, and the status, so a
//! 404 can be told from everything else. tritonadm's IMGAPI and DC clients
//! and zone-image's origin download all say it this way.

use std::fmt::Display;

use futures::TryStreamExt as _;
use progenitor_client::{ByteStream, Error, ResponseValue};
use serde::de::DeserializeOwned;

/// What a failed call came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// The HTTP status, also when the body was not the API's.
    pub status: Option<u16>,
    /// The connection or the body broke off (or stalled): another try may
    /// succeed. An answer that arrived whole, error or not, is final.
    pub transfer: bool,
    /// `503 Service Unavailable: ServiceUnavailable: ...`, or the causes.
    pub detail: String,
}

/// What to add to a transport error that is a timeout, or a certificate
/// the machine does not trust: the caller knows its variable and flags.
#[derive(Debug, Clone, Copy)]
pub struct Hints<'a> {
    pub timeout: &'a str,
    pub tls: &'a str,
}

/// Describe `e`, a failed call to `api` (`"IMGAPI"`, `"SAPI"`, ...).
/// `last_status` is the status the client last saw, for answers whose body
/// could not be read as the API's (Progenitor keeps no status for those).
pub fn describe<E: Display>(
    e: &Error<E>,
    api: &str,
    last_status: Option<u16>,
    hints: Hints<'_>,
) -> Failure {
    let status = e.status().map(|s| s.as_u16()).or(match e {
        Error::InvalidResponsePayload(..) => last_status,
        _ => None,
    });
    let (transfer, detail) = match e {
        Error::ErrorResponse(rv) => (false, format!("{}: {}", rv.status(), **rv)),
        Error::CommunicationError(re)
        | Error::ResponseBodyError(re)
        | Error::InvalidUpgrade(re) => (true, transport(re, hints)),
        Error::InvalidResponsePayload(body, err) => (
            false,
            format!(
                "{}the answer is not {} {api} response ({err}): {:?}",
                status.map(|s| format!("{s}: ")).unwrap_or_default(),
                article(api),
                String::from_utf8_lossy(&body[..body.len().min(200)])
            ),
        ),
        Error::UnexpectedResponse(r) => (false, format!("unexpected response {}", r.status())),
        Error::InvalidRequest(m) => (false, format!("invalid request: {m}")),
        Error::Custom(m) => (false, m.clone()),
    };
    Failure {
        status,
        transfer,
        detail,
    }
}

/// A transport error (also one that breaks a download's body off midway):
/// its causes in one line, and the hint that applies.
pub fn transport(re: &reqwest::Error, hints: Hints<'_>) -> String {
    let chain = error_line::one_line(re);
    let hint = if re.is_timeout() {
        hints.timeout
    } else if chain.contains("certificate") || chain.contains("InvalidCertificate") {
        hints.tls
    } else {
        ""
    };
    match hint {
        "" => chain,
        h => format!("{chain} ({h})"),
    }
}

fn article(api: &str) -> &'static str {
    match api.chars().next() {
        Some('A' | 'E' | 'I' | 'O' | 'U' | 'a' | 'e' | 'i' | 'o' | 'u') => "an",
        _ => "a",
    }
}

/// A call whose success body is a byte stream (a file download) gets its
/// error answers as one too: read the API's error `T` out of it, so it is
/// described like any other call's. An error body is small; at most
/// `limit` bytes are read.
pub async fn typed_error<T: DeserializeOwned>(e: Error<ByteStream>, limit: usize) -> Error<T> {
    match e {
        Error::ErrorResponse(rv) => {
            let (status, headers) = (rv.status(), rv.headers().clone());
            let mut stream = rv.into_inner().into_inner();
            let mut body = Vec::new();
            while body.len() < limit {
                match stream.try_next().await {
                    Ok(Some(chunk)) => body.extend_from_slice(&chunk),
                    Ok(None) => break,
                    Err(re) => return Error::ResponseBodyError(re),
                }
            }
            match serde_json::from_slice::<T>(&body) {
                Ok(err) => Error::ErrorResponse(ResponseValue::new(err, status, headers)),
                Err(je) => Error::InvalidResponsePayload(bytes::Bytes::from(body), je),
            }
        }
        Error::CommunicationError(re) => Error::CommunicationError(re),
        Error::ResponseBodyError(re) => Error::ResponseBodyError(re),
        Error::InvalidUpgrade(re) => Error::InvalidUpgrade(re),
        Error::InvalidResponsePayload(b, je) => Error::InvalidResponsePayload(b, je),
        Error::UnexpectedResponse(r) => Error::UnexpectedResponse(r),
        Error::InvalidRequest(m) => Error::InvalidRequest(m),
        Error::Custom(m) => Error::Custom(m),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::StatusCode;
    use reqwest::header::HeaderMap;

    const HINTS: Hints<'static> = Hints {
        timeout: "stalled",
        tls: "untrusted",
    };

    #[derive(Debug, serde::Deserialize)]
    struct Rest {
        code: String,
        message: String,
    }

    impl Display for Rest {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "{}: {}", self.code, self.message)
        }
    }

    fn rest(status: StatusCode) -> Error<Rest> {
        let body = Rest {
            code: "ServiceUnavailable".into(),
            message: "m".into(),
        };
        Error::ErrorResponse(ResponseValue::new(body, status, HeaderMap::new()))
    }

    #[test]
    fn answers_are_final_and_keep_their_status() {
        let f = describe(
            &rest(StatusCode::SERVICE_UNAVAILABLE),
            "IMGAPI",
            None,
            HINTS,
        );
        assert_eq!(
            f,
            Failure {
                status: Some(503),
                transfer: false,
                detail: "503 Service Unavailable: ServiceUnavailable: m".into(),
            }
        );
        let json_err = serde_json::from_str::<Rest>("<html>").unwrap_err();
        let e: Error<Rest> = Error::InvalidResponsePayload(bytes::Bytes::from("<html>"), json_err);
        let imgapi = describe(&e, "IMGAPI", Some(502), HINTS);
        assert_eq!(imgapi.status, Some(502));
        assert!(
            imgapi
                .detail
                .starts_with("502: the answer is not an IMGAPI response (")
                && imgapi.detail.ends_with("\"<html>\""),
            "{}",
            imgapi.detail
        );
        let sapi = describe(&e, "SAPI", None, HINTS);
        assert!(sapi.detail.starts_with("the answer is not a SAPI response"));
    }

    #[tokio::test]
    async fn transport_failures_are_transfers_with_their_hint() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let silent = format!("http://{}", listener.local_addr().unwrap());
        let refused = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            format!("http://{}", l.local_addr().unwrap())
        };
        let re = reqwest::get(&refused).await.unwrap_err();
        let f = describe(
            &Error::<Rest>::CommunicationError(re),
            "IMGAPI",
            None,
            HINTS,
        );
        assert!(f.transfer && f.status.is_none());
        assert!(
            f.detail.to_lowercase().contains("connection refused"),
            "{}",
            f.detail
        );
        assert!(!f.detail.contains("stalled"), "{}", f.detail);

        // Accepted, never answered: a timeout, which gets the hint.
        let client = reqwest::Client::builder()
            .timeout(std::time::Duration::from_millis(200))
            .build()
            .unwrap();
        let re = client.get(&silent).send().await.unwrap_err();
        let f = describe(
            &Error::<Rest>::CommunicationError(re),
            "IMGAPI",
            None,
            HINTS,
        );
        assert!(
            f.transfer && f.detail.ends_with("(stalled)"),
            "{}",
            f.detail
        );
        drop(listener);
    }

    #[tokio::test]
    async fn a_downloads_error_answer_is_read_as_the_apis_error() {
        let stream = |body: &'static str| {
            let chunks = vec![Ok(bytes::Bytes::from(body))];
            ByteStream::new(Box::pin(futures::stream::iter(chunks)))
        };
        let answer = |body| {
            Error::ErrorResponse(ResponseValue::new(
                stream(body),
                StatusCode::NOT_FOUND,
                HeaderMap::new(),
            ))
        };
        let e = typed_error::<Rest>(
            answer(r#"{"code":"ResourceNotFound","message":"gone"}"#),
            1024,
        )
        .await;
        let f = describe(&e, "IMGAPI", None, HINTS);
        assert_eq!(f.status, Some(404));
        assert_eq!(f.detail, "404 Not Found: ResourceNotFound: gone");
        let e = typed_error::<Rest>(answer("not json"), 1024).await;
        let f = describe(&e, "IMGAPI", Some(404), HINTS);
        assert_eq!(f.status, Some(404));
        assert!(f.detail.contains("\"not json\""), "{}", f.detail);
    }
}
