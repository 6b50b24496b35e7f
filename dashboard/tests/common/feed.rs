//! A metrics stream for the page to read: a loopback server that sends the lines it is given
//! (`data: ...`) on every tick, with `: ping` between, to every client.

#![allow(dead_code, unreachable_pub)]

use std::{
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::Duration,
};

use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpListener,
    sync::watch,
    task::JoinHandle,
};

/// A stream server: `/hystrix.stream` (any path) sends the current lines every `period`.
pub struct Feed {
    pub addr: SocketAddr,
    lines: Arc<Mutex<Vec<String>>>,
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
    period: Duration,
    cors: bool,
}

impl Feed {
    /// A feed on a free loopback port.
    pub async fn start(period: Duration, cors: bool) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        Self::on(listener, period, cors, Arc::default())
    }

    fn on(
        listener: TcpListener,
        period: Duration,
        cors: bool,
        lines: Arc<Mutex<Vec<String>>>,
    ) -> Self {
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = watch::channel(false);
        let task = tokio::spawn(serve(listener, period, cors, lines.clone(), stopped));
        Self {
            addr,
            lines,
            stop,
            task,
            period,
            cors,
        }
    }

    /// The stream's URL.
    pub fn url(&self) -> String {
        format!("http://{}/hystrix.stream", self.addr)
    }

    /// The JSON objects sent from the next tick on.
    pub fn set(&self, lines: Vec<String>) {
        *self.lines.lock().unwrap() = lines;
    }

    /// Closes every connection and stops listening.
    pub async fn stop(self) -> (SocketAddr, Arc<Mutex<Vec<String>>>, Duration, bool) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
        (self.addr, self.lines, self.period, self.cors)
    }

    /// Listens again on the address of a stopped feed.
    pub async fn restart(stopped: (SocketAddr, Arc<Mutex<Vec<String>>>, Duration, bool)) -> Self {
        let (addr, lines, period, cors) = stopped;
        let listener = TcpListener::bind(addr).await.unwrap();
        Self::on(listener, period, cors, lines)
    }
}

async fn serve(
    listener: TcpListener,
    period: Duration,
    cors: bool,
    lines: Arc<Mutex<Vec<String>>>,
    mut stopped: watch::Receiver<bool>,
) {
    let mut clients = Vec::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((socket, _)) = accepted else { continue };
                clients.push(tokio::spawn(client(socket, period, cors, lines.clone())));
            }
            _ = stopped.changed() => break,
        }
    }
    for client in clients {
        client.abort();
    }
}

async fn client(
    mut socket: tokio::net::TcpStream,
    period: Duration,
    cors: bool,
    lines: Arc<Mutex<Vec<String>>>,
) {
    // Read the request head (bounded), then stream.
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 16 * 1024 {
        match socket.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
    }
    let mut response = String::from(
        "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream;charset=UTF-8\r\n\
         Cache-Control: no-cache\r\nConnection: close\r\n",
    );
    if cors {
        response.push_str("Access-Control-Allow-Origin: *\r\n");
    }
    response.push_str("\r\n");
    if socket.write_all(response.as_bytes()).await.is_err() {
        return;
    }
    let mut tick = tokio::time::interval(period);
    loop {
        tick.tick().await;
        let mut out = String::new();
        for line in lines.lock().unwrap().iter() {
            out.push_str("data: ");
            out.push_str(line);
            out.push_str("\n\n");
        }
        out.push_str(": ping\n\n");
        if socket.write_all(out.as_bytes()).await.is_err() {
            return;
        }
    }
}
