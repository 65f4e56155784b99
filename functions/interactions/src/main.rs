use lambda_http::{run, service_fn, Error};

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_http::tracing::init_default_subscriber();
    // Configuration and clients are built once per container; a bad configuration fails INIT.
    let app = bridge::App::from_env().await?;
    run(service_fn(|req| interactions::handle(&app, req))).await
}
