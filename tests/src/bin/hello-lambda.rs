//! The bench fixture: the smallest `lambda_http` function, as in aws-lambda-rust-runtime's examples. Cold
//! init of the bridge's functions is compared with it.

use lambda_http::{run, service_fn, Body, Error, Request, Response};

async fn hello(_req: Request) -> Result<Response<Body>, Error> {
    Ok(Response::builder()
        .status(200)
        .header("content-type", "text/plain")
        .body("Hello, world".into())?)
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_http::tracing::init_default_subscriber();
    run(service_fn(hello)).await
}
