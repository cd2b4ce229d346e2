//! Static registry server (placeholder until the http branch lands).

use std::path::PathBuf;

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Request, Response};
use tokio::net::TcpListener;

pub async fn bind(addr: &str) -> std::io::Result<TcpListener> {
    TcpListener::bind(addr).await
}

pub async fn serve(dir: PathBuf, listener: TcpListener) -> std::io::Result<()> {
    loop {
        let (stream, _) = listener.accept().await?;
        let dir = dir.clone();
        tokio::spawn(async move {
            let svc = hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
                let dir = dir.clone();
                async move {
                    let path = req.uri().path().trim_start_matches('/').to_string();
                    let resp = if path.split('/').any(|s| s == "..") {
                        Response::builder()
                            .status(400)
                            .body(Full::new(Bytes::new()))
                    } else {
                        match tokio::fs::read(dir.join(&path)).await {
                            Ok(b) => Response::builder()
                                .status(200)
                                .body(Full::new(Bytes::from(b))),
                            Err(_) => Response::builder()
                                .status(404)
                                .body(Full::new(Bytes::new())),
                        }
                    };
                    Ok::<_, hyper::http::Error>(resp.unwrap_or_default())
                }
            });
            let io = hyper_util::rt::TokioIo::new(stream);
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(io, svc)
                .await;
        });
    }
}

pub async fn run(dir: PathBuf, listen: &str) -> anyhow::Result<()> {
    let l = bind(listen).await?;
    println!("serving {} on http://{}", dir.display(), l.local_addr()?);
    tokio::select! {
        r = serve(dir, l) => r?,
        _ = tokio::signal::ctrl_c() => {}
    }
    Ok(())
}
