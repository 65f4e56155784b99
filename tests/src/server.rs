//! An axum router served on 127.0.0.1 for the length of a test, stopped when dropped. The local bridge,
//! the fake Zendesk and the Lambda Runtime API emulator all run on it.

use std::net::SocketAddr;

use axum::Router;
use tokio::sync::oneshot;

/// A running server; dropping it stops it.
pub struct Served {
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
}

impl Served {
    /// Serves `router` on `addr` (port 0 picks a free port).
    pub async fn start(router: Router, addr: SocketAddr) -> std::io::Result<Served> {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let (tx, rx) = oneshot::channel::<()>();
        tokio::spawn(async move {
            let _ = axum::serve(listener, router)
                .with_graceful_shutdown(async {
                    let _ = rx.await;
                })
                .await;
        });
        Ok(Served { addr, stop: Some(tx) })
    }

    /// On an ephemeral port of 127.0.0.1.
    pub async fn local(router: Router) -> std::io::Result<Served> {
        Served::start(router, SocketAddr::from(([127, 0, 0, 1], 0))).await
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}
