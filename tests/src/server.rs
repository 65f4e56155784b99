//! An axum router served on 127.0.0.1 for the length of a test, stopped when dropped. The local bridge,
//! the fake Zendesk and the Lambda Runtime API emulator all run on it.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};

use axum::serve::Listener;
use axum::Router;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;

/// A running server; dropping it stops it.
pub struct Served {
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
}

impl Served {
    /// Serves `router` on `addr` (port 0 picks a free port).
    pub async fn start(router: Router, addr: SocketAddr) -> std::io::Result<Served> {
        Served::serve(TcpListener::bind(addr).await?, router)
    }

    /// Serves `router` on connections from `listener`.
    pub fn serve<L: Listener<Addr = SocketAddr>>(listener: L, router: Router) -> std::io::Result<Served> {
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

/// `listener`, calling `wrote` each time bytes were written to one of its connections.
pub fn on_write<F: Fn() + Send + Sync + 'static>(listener: TcpListener, wrote: F) -> OnWrite<F> {
    OnWrite {
        listener,
        wrote: std::sync::Arc::new(wrote),
    }
}

pub struct OnWrite<F> {
    listener: TcpListener,
    wrote: std::sync::Arc<F>,
}

impl<F: Fn() + Send + Sync + 'static> Listener for OnWrite<F> {
    type Io = Written<F>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        let (tcp, addr) = Listener::accept(&mut self.listener).await;
        (
            Written {
                tcp,
                wrote: self.wrote.clone(),
            },
            addr,
        )
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }
}

/// A connection that reports its writes.
pub struct Written<F> {
    tcp: TcpStream,
    wrote: std::sync::Arc<F>,
}

impl<F: Fn()> Written<F> {
    fn note(&self, written: &Poll<io::Result<usize>>) {
        if matches!(written, Poll::Ready(Ok(n)) if *n > 0) {
            (self.wrote)();
        }
    }
}

impl<F: Fn()> AsyncRead for Written<F> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.tcp).poll_read(cx, buf)
    }
}

impl<F: Fn()> AsyncWrite for Written<F> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let written = Pin::new(&mut self.tcp).poll_write(cx, buf);
        self.note(&written);
        written
    }

    fn poll_write_vectored(mut self: Pin<&mut Self>, cx: &mut Context<'_>, bufs: &[io::IoSlice<'_>]) -> Poll<io::Result<usize>> {
        let written = Pin::new(&mut self.tcp).poll_write_vectored(cx, bufs);
        self.note(&written);
        written
    }

    fn is_write_vectored(&self) -> bool {
        self.tcp.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.tcp).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.tcp).poll_shutdown(cx)
    }
}
