use lambda_http::Error;

// One thread: Lambda sends an execution environment one request at a time, and a function's concurrency
// (a lookup's searches, the SSM refresh, a database connection) is I/O, which one thread multiplexes. Worker
// threads only cost INIT time and CPU for handing work between them (issue 14, BENCHMARKS.md).
#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    // The runtime's default log subscriber, except that it never logs a raw request with its secrets.
    bridge::secrets::logging::init();
    // Configuration and clients are built once per container; a bad configuration fails INIT.
    let app = bridge::App::from_env().await?;
    bridge::lambda::run(|req| contacts::handle(&app, req)).await
}
