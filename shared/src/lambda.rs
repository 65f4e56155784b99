//! The functions' Lambda entry point: `lambda_http`'s request conversion, and the HTTP API's proxy
//! response (payload format 2.0) made here.
//!
//! `lambda_http::run` turns a `Response<String>` into the proxy response by collecting the body as bytes,
//! decoding them into a new string and parsing the content type, then serialises it in code compiled with
//! the function's crate. Here the body moves into the proxy response as it is, and the whole response is
//! serialised in this crate's code (opt-level 3, `Cargo.toml`): for a 1000-contact page, a 200 KB body with
//! some 40,000 quotes to escape, that was about 8 % of the function's instructions (callgrind, issue 14).
//! The tests hold the result to what `lambda_http` sends.

use std::future::Future;

use http::header::SET_COOKIE;
use http::HeaderValue;
use lambda_http::aws_lambda_events::apigw::ApiGatewayV2httpResponse;
use lambda_http::request::LambdaRequest;
use lambda_http::{lambda_runtime, Body, Error, LambdaEvent, Request, RequestExt, Response};

/// Serves `handler` on the Lambda Runtime API until the runtime stops.
pub async fn run<F, Fut>(handler: F) -> Result<(), Error>
where
    F: Fn(Request) -> Fut,
    Fut: Future<Output = Result<Response<String>, Error>>,
{
    lambda_runtime::run(lambda_runtime::service_fn(|event: LambdaEvent<LambdaRequest>| {
        let answer = handler(request(event));
        async move { answer.await.map(envelope) }
    }))
    .await
}

/// The event as an HTTP request, with the invocation's context, as `lambda_http` makes it (the X-Ray
/// trace id included).
pub fn request(event: LambdaEvent<LambdaRequest>) -> Request {
    let LambdaEvent { payload, context } = event;
    let mut request: Request = payload.into();
    if let Some(trace) = context.xray_trace_id.as_deref().and_then(|t| HeaderValue::from_str(t).ok()) {
        request.headers_mut().insert("x-amzn-trace-id", trace);
    }
    request.with_lambda_context(context)
}

/// The proxy response for `response`: status, headers, `Set-Cookie` headers as `cookies`, and the body as
/// text (a `String` is always valid as text, so it is never base64-encoded).
pub fn envelope(response: Response<String>) -> ApiGatewayV2httpResponse {
    let (parts, body) = response.into_parts();
    let mut headers = parts.headers;
    let cookies = headers
        .get_all(SET_COOKIE)
        .iter()
        .map(|v| v.to_str().unwrap_or_default().to_string())
        .collect();
    headers.remove(SET_COOKIE);
    let mut proxy = ApiGatewayV2httpResponse::default();
    proxy.status_code = i64::from(parts.status.as_u16());
    proxy.headers = headers;
    proxy.cookies = cookies;
    proxy.body = Some(Body::Text(body));
    proxy
}

#[cfg(test)]
mod tests {
    use super::*;
    use lambda_http::{service_fn, tower::Service, Adapter, Context};
    use serde_json::{json, Value};

    fn event() -> LambdaEvent<LambdaRequest> {
        let payload: LambdaRequest = serde_json::from_value(json!({
            "version": "2.0", "routeKey": "POST /contacts", "rawPath": "/contacts", "rawQueryString": "a=1",
            "headers": {"content-type": "application/json", "authorization": "Bearer x"},
            "requestContext": {"accountId": "1", "apiId": "api", "domainName": "x.example.com", "domainPrefix": "x",
                "http": {"method": "POST", "path": "/contacts", "protocol": "HTTP/1.1", "sourceIp": "127.0.0.1", "userAgent": "t"},
                "requestId": "r", "routeKey": "POST /contacts", "stage": "$default", "time": "02/Dec/2026:20:00:00 +0000",
                "timeEpoch": 1_796_000_000_000u64},
            "body": "{\"limit\":10}", "isBase64Encoded": false
        }))
        .unwrap();
        let mut context = Context::default();
        context.request_id = "req-1".into();
        context.xray_trace_id = Some("Root=1-5759e988-bd862e3fe1be46a994272793;Sampled=1".into());
        LambdaEvent::new(payload, context)
    }

    /// What `lambda_http::run` would have sent the runtime for `response`.
    async fn theirs(response: Response<String>) -> Value {
        let mut adapter = Adapter::from(service_fn(move |_req: Request| {
            let response = response.clone();
            async move { Ok::<_, Error>(response) }
        }));
        serde_json::to_value(adapter.call(event()).await.unwrap()).unwrap()
    }

    fn ours(response: Response<String>) -> Value {
        serde_json::to_value(envelope(response)).unwrap()
    }

    #[tokio::test]
    async fn the_proxy_response_is_the_one_lambda_http_sends() {
        let page = json!({"contacts": [{"id": "1", "name": "Zoë \"Z\" O'Neil", "emails": ["z@x.com"]}],
            "synchronization_checkpoint": "c\\d\n\t\u{1}", "next_offset": "🙂"})
        .to_string();
        let responses = [
            Response::builder()
                .status(200)
                .header("content-type", "application/json")
                .body(page)
                .unwrap(),
            Response::builder()
                .status(429)
                .header("content-type", "application/json")
                .header("retry-after", "7")
                .header("x-many", "a")
                .header("x-many", "b")
                .body(r#"{"error":"rate limited"}"#.to_string())
                .unwrap(),
            Response::builder()
                .status(204)
                .header("set-cookie", "a=1; Secure")
                .header("set-cookie", "b=2")
                .body(String::new())
                .unwrap(),
            Response::builder()
                .status(500)
                .body("plain \"text\" without a content type".to_string())
                .unwrap(),
        ];
        for response in responses {
            assert_eq!(ours(response.clone()), theirs(response.clone()).await, "{response:?}");
        }
    }

    #[tokio::test]
    async fn the_request_is_the_one_lambda_http_makes() {
        let seen = std::sync::Arc::new(std::sync::Mutex::new(None));
        let keep = seen.clone();
        let mut adapter = Adapter::from(service_fn(move |req: Request| {
            *keep.lock().unwrap() = Some(req);
            async { Ok::<_, Error>(Response::new(String::new())) }
        }));
        adapter.call(event()).await.unwrap();
        let theirs = seen.lock().unwrap().take().unwrap();
        let ours = request(event());
        assert_eq!(ours.method(), theirs.method());
        assert_eq!(ours.uri(), theirs.uri());
        assert_eq!(ours.headers(), theirs.headers());
        assert!(ours.headers().contains_key("x-amzn-trace-id"));
        assert_eq!(ours.body(), theirs.body());
        assert_eq!(ours.lambda_context_ref().map(|c| c.request_id.clone()), Some("req-1".to_string()));
        assert_eq!(ours.query_string_parameters_ref(), theirs.query_string_parameters_ref());
    }
}
