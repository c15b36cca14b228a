//! The realm's HTTP handler: authenticate, grant scopes, answer a token.

use std::sync::Arc;

use base64::Engine;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};

use super::scope::{Access, grant, parse_scope};
use super::{IssuerState, TokenRequest};
use crate::server::Body;

/// Who is asking, after credentials were checked.
enum Caller {
    User(String, Vec<String>),
    Anonymous(Vec<String>),
}

pub(crate) async fn handle(state: Arc<IssuerState>, req: Request<Incoming>) -> Response<Body> {
    let method = req.method().clone();
    let basic = basic_credentials(&req);
    let query: Vec<(String, String)> =
        url::form_urlencoded::parse(req.uri().query().unwrap_or("").as_bytes())
            .into_owned()
            .collect();
    let mut record = TokenRequest {
        method: method.to_string(),
        account: None,
        scopes: Vec::new(),
        grant_type: None,
        status: 0,
    };
    let response = if method == Method::GET {
        record.scopes = values(&query, "scope");
        match basic {
            Some((user, password)) => match authenticate(&state, &user, &password) {
                Some(caller) => answer(&state, &mut record, caller, &query, None),
                None => unauthorized("invalid username or password"),
            },
            None => match &state.config.anonymous {
                Some(actions) => answer(
                    &state,
                    &mut record,
                    Caller::Anonymous(actions.clone()),
                    &query,
                    None,
                ),
                None => unauthorized("credentials required"),
            },
        }
    } else if method == Method::POST {
        let body = match req.into_body().collect().await {
            Ok(b) => b.to_bytes(),
            Err(_) => Bytes::new(),
        };
        let form: Vec<(String, String)> = url::form_urlencoded::parse(&body).into_owned().collect();
        record.grant_type = first(&form, "grant_type");
        record.scopes = first(&form, "scope")
            .map(|s| {
                s.split(' ')
                    .filter(|s| !s.is_empty())
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default();
        match record.grant_type.as_deref() {
            Some("password") => {
                let user = first(&form, "username").unwrap_or_default();
                let password = first(&form, "password").unwrap_or_default();
                match authenticate(&state, &user, &password) {
                    Some(caller) => {
                        let refresh = state.next_refresh_token(&user);
                        answer(&state, &mut record, caller, &form, Some(refresh))
                    }
                    None => unauthorized("invalid username or password"),
                }
            }
            Some("refresh_token") => {
                let token = first(&form, "refresh_token").unwrap_or_default();
                let user = state
                    .refresh_tokens
                    .lock()
                    .expect("lock")
                    .get(&token)
                    .cloned();
                let caller = user.and_then(|u| {
                    state
                        .config
                        .users
                        .iter()
                        .find(|x| x.username == u)
                        .map(|x| Caller::User(u, x.actions.clone()))
                });
                match caller {
                    Some(caller) => answer(&state, &mut record, caller, &form, Some(token)),
                    None => unauthorized("unknown refresh token"),
                }
            }
            _ => error(StatusCode::BAD_REQUEST, "unsupported grant_type"),
        }
    } else {
        error(StatusCode::METHOD_NOT_ALLOWED, "GET or POST")
    };
    record.status = response.status().as_u16();
    state.requests.lock().expect("lock").push(record);
    response
}

fn authenticate(state: &IssuerState, user: &str, password: &str) -> Option<Caller> {
    state
        .config
        .users
        .iter()
        .find(|u| u.username == user && u.password == password)
        .map(|u| Caller::User(u.username.clone(), u.actions.clone()))
}

fn answer(
    state: &IssuerState,
    record: &mut TokenRequest,
    caller: Caller,
    params: &[(String, String)],
    refresh_token: Option<String>,
) -> Response<Body> {
    if let Some(service) = first(params, "service")
        && service != state.config.service
    {
        return error(StatusCode::BAD_REQUEST, "unknown service");
    }
    let (subject, allowed) = match caller {
        Caller::User(name, actions) => {
            record.account = Some(name.clone());
            (name, actions)
        }
        Caller::Anonymous(actions) => (String::new(), actions),
    };
    let access: Vec<Access> = record
        .scopes
        .iter()
        .filter_map(|s| parse_scope(s))
        .map(|requested| grant(&requested, &allowed))
        .filter(|a| !a.actions.is_empty())
        .collect();
    let lifetime = state.config.expires_in as i64;
    let token = state.mint(&subject, &access, lifetime);
    let issued_at = httpdate_now();
    let mut body = serde_json::json!({
        "token": token,
        "access_token": token,
        "expires_in": lifetime,
        "issued_at": issued_at,
    });
    if let Some(refresh) = refresh_token {
        body["refresh_token"] = serde_json::Value::String(refresh);
    }
    json(StatusCode::OK, &body)
}

/// RFC 3339 UTC time of now, as token servers send in `issued_at`.
fn httpdate_now() -> String {
    humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string()
}

fn basic_credentials(req: &Request<Incoming>) -> Option<(String, String)> {
    let value = req
        .headers()
        .get(hyper::header::AUTHORIZATION)?
        .to_str()
        .ok()?;
    let encoded = value.strip_prefix("Basic ")?;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (user, password) = text.split_once(':')?;
    Some((user.to_owned(), password.to_owned()))
}

fn values(params: &[(String, String)], key: &str) -> Vec<String> {
    params
        .iter()
        .filter(|(k, _)| k == key)
        .map(|(_, v)| v.clone())
        .collect()
}

fn first(params: &[(String, String)], key: &str) -> Option<String> {
    params
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.clone())
}

fn json(status: StatusCode, body: &serde_json::Value) -> Response<Body> {
    Response::builder()
        .status(status)
        .header(hyper::header::CONTENT_TYPE, "application/json")
        .body(Full::new(Bytes::from(
            serde_json::to_vec(body).expect("JSON"),
        )))
        .expect("response")
}

fn error(status: StatusCode, message: &str) -> Response<Body> {
    json(
        status,
        &serde_json::json!({"errors": [{"code": "DENIED", "message": message}]}),
    )
}

fn unauthorized(message: &str) -> Response<Body> {
    let mut response = json(
        StatusCode::UNAUTHORIZED,
        &serde_json::json!({"errors": [{"code": "UNAUTHORIZED", "message": message}]}),
    );
    response.headers_mut().insert(
        hyper::header::WWW_AUTHENTICATE,
        hyper::header::HeaderValue::from_static("Basic realm=\"kiln-testkit\""),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::httpdate_now;

    #[test]
    fn issued_at_is_now_in_rfc3339_seconds() {
        let text = httpdate_now();
        assert_eq!(text.len(), "2024-01-01T00:00:00Z".len(), "{text}");
        let at = humantime::parse_rfc3339(&text).unwrap();
        let off = std::time::SystemTime::now()
            .duration_since(at)
            .unwrap_or_default();
        assert!(off.as_secs() < 60, "{text}");
    }
}
