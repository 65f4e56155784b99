use lambda_http::{run, service_fn, Error};

#[tokio::main]
async fn main() -> Result<(), Error> {
    // The runtime's default log subscriber, except that it never logs a raw request with its secrets.
    bridge::secrets::logging::init();
    // Configuration and clients are built once per container; a bad configuration fails INIT.
    let app = bridge::App::from_env().await?;
    run(service_fn(|req| contacts::handle(&app, req))).await
}
