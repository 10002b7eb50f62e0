//! The listener over real TCP on loopback: the client allow list, the
//! connection limit and graceful shutdown.

mod common;

use std::net::SocketAddr;
use std::sync::Arc;

use common::*;
use danegate::server::Server;
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

const SHUTTING_DOWN: &str = "421 4.3.2 Service shutting down, try again later";

/// A running server: its address, the stop trigger and the `run` task.
struct Running {
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
}

async fn serve(cfg: ConfigBuilder) -> Running {
    let ctx = cfg.context(&Arc::new(TableResolver::new()));
    let server = Server::bind(ctx).await.expect("bind");
    let addrs = server.local_addrs();
    assert_eq!(addrs.len(), 1);
    let (tx, rx) = oneshot::channel::<()>();
    let task = tokio::spawn(server.run(async move {
        let _ = rx.await;
    }));
    Running {
        addr: addrs[0],
        stop: Some(tx),
        task,
    }
}

impl Running {
    fn stop(&mut self) {
        self.stop
            .take()
            .expect("stopped once")
            .send(())
            .expect("server still running");
    }
}

async fn connect(addr: SocketAddr) -> SmtpClient<TcpStream> {
    let s = bounded("connect", TcpStream::connect(addr))
        .await
        .expect("connect");
    SmtpClient::new(s)
}

#[tokio::test]
async fn client_outside_allow_clients_is_refused() {
    let mut srv = serve(ConfigBuilder::new().server("allow_clients", "[\"127.0.0.1/32\"]")).await;

    let sock = TcpSocket::new_v4().unwrap();
    sock.bind("127.0.0.2:0".parse().unwrap())
        .expect("bind 127.0.0.2");
    let stream = bounded("connect", sock.connect(srv.addr))
        .await
        .expect("connect from 127.0.0.2");
    let mut c = SmtpClient::new(stream);
    c.expect("554 5.7.1 Access denied: 127.0.0.2 may not relay through this host")
        .await;
    c.expect_closed().await;

    // 127.0.0.1 is allowed.
    let mut ok = connect(srv.addr).await;
    ok.expect(&greeting()).await;
    ok.cmd("QUIT", "221 2.0.0 relay.example.net closing connection")
        .await;
    ok.expect_closed().await;

    srv.stop();
    bounded("the server to stop", srv.task).await.unwrap();
}

#[tokio::test]
async fn connection_over_the_limit_gets_421() {
    let mut srv = serve(ConfigBuilder::new().server("max_connections", "1")).await;
    let mut first = connect(srv.addr).await;
    first.expect(&greeting()).await;

    let mut second = connect(srv.addr).await;
    second
        .expect("421 4.3.2 Too many connections, try again later")
        .await;
    second.expect_closed().await;

    // The first session is unaffected, and its end frees the slot.
    first.cmd("NOOP", "250 2.0.0 Ok").await;
    first
        .cmd("QUIT", "221 2.0.0 relay.example.net closing connection")
        .await;
    first.expect_closed().await;
    let mut third = connect(srv.addr).await;
    third.expect(&greeting()).await;
    third
        .cmd("QUIT", "221 2.0.0 relay.example.net closing connection")
        .await;

    srv.stop();
    bounded("the server to stop", srv.task).await.unwrap();
}

#[tokio::test]
async fn shutdown_finishes_the_transaction_in_flight_and_refuses_the_rest() {
    let dest = FakeDest::start(DestScript::default()).await;
    let mut srv = serve(
        ConfigBuilder::new()
            .route("example.test", &dest.route())
            .timeout("shutdown_grace", 10),
    )
    .await;

    let mut idle = connect(srv.addr).await;
    idle.hello(DEFAULT_MAX_SIZE).await;

    let mut busy = connect(srv.addr).await;
    busy.hello(DEFAULT_MAX_SIZE).await;
    busy.cmd("MAIL FROM:<sender@legacy.test>", "250 2.1.0 Ok")
        .await;
    busy.cmd("RCPT TO:<rcpt@example.test>", "250 2.1.5 Ok")
        .await;
    busy.cmd("DATA", "354 End data with <CR><LF>.<CR><LF>")
        .await;
    busy.send("Subject: in flight\r\n\r\nfirst half\r\n").await;
    dest.wait_for("the first half of the content", |c| {
        c.first()
            .and_then(|c| c.messages.first())
            .is_some_and(|m| !m.data().0.is_empty())
    })
    .await;

    srv.stop();

    // The idle session is told at once.
    idle.expect(SHUTTING_DOWN).await;
    idle.expect_closed().await;

    // New connections during the grace period are refused.
    let mut late = connect(srv.addr).await;
    late.expect(SHUTTING_DOWN).await;
    late.expect_closed().await;

    // The transaction in flight completes with the destination's reply,
    // then the session is closed.
    busy.send("second half\r\n.\r\n").await;
    busy.expect("250 2.0.0 Ok: queued as Q1").await;
    busy.expect(SHUTTING_DOWN).await;
    busy.expect_closed().await;

    bounded("the server to stop", srv.task).await.unwrap();
    let conns = dest.wait_closed(1).await;
    assert_eq!(
        conns[0].messages,
        vec![Message::Data {
            bytes: b"Subject: in flight\r\n\r\nfirst half\r\nsecond half\r\n".to_vec(),
            terminated: true
        }]
    );
    assert_eq!(conns[0].commands().last(), Some(&"QUIT"));
}

#[tokio::test]
async fn stopped_server_no_longer_accepts() {
    let mut srv = serve(ConfigBuilder::new()).await;
    let addr = srv.addr;
    srv.stop();
    bounded("the server to stop", srv.task).await.unwrap();
    // The listener goes with the server (its task is aborted, which takes
    // effect when the runtime next drops it: allow a moment).
    bounded("the listener to close", async {
        while TcpStream::connect(addr).await.is_ok() {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    })
    .await;
}

#[tokio::test]
async fn sessions_left_after_the_grace_period_are_dropped() {
    let dest = FakeDest::start(DestScript::default()).await;
    let mut srv = serve(
        ConfigBuilder::new()
            .route("example.test", &dest.route())
            .timeout("shutdown_grace", 1),
    )
    .await;
    let mut busy = connect(srv.addr).await;
    busy.hello(DEFAULT_MAX_SIZE).await;
    busy.cmd("MAIL FROM:<sender@legacy.test>", "250 2.1.0 Ok")
        .await;
    busy.cmd("RCPT TO:<rcpt@example.test>", "250 2.1.5 Ok")
        .await;
    busy.cmd("DATA", "354 End data with <CR><LF>.<CR><LF>")
        .await;
    busy.send("Subject: too slow\r\n\r\n").await;
    dest.wait_for("the start of the content", |c| {
        c.first()
            .and_then(|c| c.messages.first())
            .is_some_and(|m| !m.data().0.is_empty())
    })
    .await;
    let stopped = tokio::time::Instant::now();
    srv.stop();
    bounded("the server to stop", srv.task).await.unwrap();
    let took = stopped.elapsed();
    assert!(
        took >= std::time::Duration::from_secs(1) && took < std::time::Duration::from_secs(3),
        "stopped after {took:?}"
    );
    // Dropped without a reply, and the destination without an end of data.
    busy.expect_closed().await;
    let conns = dest.wait_closed(1).await;
    assert!(!conns[0].messages[0].complete());
}
