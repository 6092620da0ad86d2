//! A minimal HTTP/1.1 client: one keep-alive connection per load worker,
//! one request in flight on it at a time (like `wrk`'s connections), on
//! hyper 1's low-level `client::conn` API. No pool, no retries, no TLS.

use anyhow::{Context, Result, anyhow, bail};
use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Full};
use hyper::client::conn::http1::SendRequest;
use hyper::{Method, Request, StatusCode, header};
use hyper_util::rt::TokioIo;
use std::net::SocketAddr;

/// Where a URL points: the socket address and the `Host` header.
#[derive(Clone, Debug)]
pub struct Endpoint {
    pub addr: SocketAddr,
    pub host: String,
}

impl Endpoint {
    /// Parses `http://host:port[/]` (plain HTTP only) and resolves the host.
    pub fn parse(url: &str) -> Result<Endpoint> {
        let rest = url
            .strip_prefix("http://")
            .ok_or_else(|| anyhow!("only http:// URLs are supported by the raw client, not {url:?}"))?;
        let authority = rest.split('/').next().unwrap_or(rest);
        let with_port = if authority.contains(':') { authority.to_string() } else { format!("{authority}:80") };
        let addr = std::net::ToSocketAddrs::to_socket_addrs(&with_port)
            .with_context(|| format!("resolving {authority}"))?
            .next()
            .ok_or_else(|| anyhow!("{authority} has no address"))?;
        Ok(Endpoint { addr, host: authority.to_string() })
    }
}

/// One open connection.
pub struct Conn {
    sender: SendRequest<Full<Bytes>>,
    host: String,
}

impl Conn {
    pub async fn open(endpoint: &Endpoint) -> Result<Conn> {
        let stream = tokio::net::TcpStream::connect(endpoint.addr).await?;
        stream.set_nodelay(true)?;
        let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(async move {
            let _ = connection.await;
        });
        Ok(Conn { sender, host: endpoint.host.clone() })
    }

    /// Sends one request and reads the whole response.
    pub async fn request(&mut self, method: Method, path: &str, body: Bytes) -> Result<(StatusCode, Bytes)> {
        let mut builder = Request::builder().method(method).uri(path).header(header::HOST, &self.host);
        if !body.is_empty() {
            builder = builder.header(header::CONTENT_TYPE, "application/cbor");
        }
        let request = builder.body(Full::new(body))?;
        self.sender.ready().await?;
        let response = self.sender.send_request(request).await?;
        let status = response.status();
        let body = response.into_body().collect().await?.to_bytes();
        Ok((status, body))
    }
}

/// A one-off GET on a fresh connection (status polls, `/metrics`).
pub async fn get(endpoint: &Endpoint, path: &str) -> Result<Bytes> {
    let stream = tokio::net::TcpStream::connect(endpoint.addr).await?;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    let request = Request::builder()
        .method(Method::GET)
        .uri(path)
        .header(header::HOST, &endpoint.host)
        .body(Empty::<Bytes>::new())?;
    let response = sender.send_request(request).await?;
    let status = response.status();
    let body = response.into_body().collect().await?.to_bytes();
    if !status.is_success() {
        bail!("GET {path}: HTTP {status}");
    }
    Ok(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_urls() {
        let e = Endpoint::parse("http://127.0.0.1:4943").unwrap();
        assert_eq!(e.addr, "127.0.0.1:4943".parse().unwrap());
        assert_eq!(e.host, "127.0.0.1:4943");
        let e = Endpoint::parse("http://127.0.0.1:8080/").unwrap();
        assert_eq!(e.addr.port(), 8080);
        assert!(Endpoint::parse("https://example.invalid").is_err());
    }
}
