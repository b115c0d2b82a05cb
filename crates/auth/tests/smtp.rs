//! Mail through lettre SMTP when configured: a minimal SMTP server on 127.0.0.1 receives the
//! confirmation, whose code then verifies the sign-up.

use std::time::Duration;

use manifold_config::{SmtpConfig, SmtpTls};
use serde_json::json;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;
use tokio::sync::mpsc;

use crate::common::Api;

/// Accepts SMTP sessions and forwards each message's DATA.
async fn fake_smtp(listener: TcpListener, messages: mpsc::UnboundedSender<String>) {
    loop {
        let Ok((socket, _)) = listener.accept().await else {
            return;
        };
        let messages = messages.clone();
        tokio::spawn(async move {
            let (read, mut write) = socket.into_split();
            let mut lines = BufReader::new(read).lines();
            write
                .write_all(b"220 localhost ESMTP test\r\n")
                .await
                .unwrap();
            let mut data: Option<String> = None;
            while let Ok(Some(line)) = lines.next_line().await {
                if let Some(body) = data.as_mut() {
                    if line == "." {
                        messages.send(data.take().unwrap()).unwrap();
                        write.write_all(b"250 OK queued\r\n").await.unwrap();
                    } else {
                        body.push_str(&line);
                        body.push('\n');
                    }
                    continue;
                }
                let command = line.to_ascii_uppercase();
                let reply: &[u8] = if command.starts_with("EHLO") {
                    b"250-localhost\r\n250 8BITMIME\r\n"
                } else if command.starts_with("DATA") {
                    data = Some(String::new());
                    b"354 go ahead\r\n"
                } else if command.starts_with("QUIT") {
                    write.write_all(b"221 bye\r\n").await.unwrap();
                    return;
                } else {
                    b"250 OK\r\n"
                };
                write.write_all(reply).await.unwrap();
            }
        });
    }
}

/// The six-digit code after "enter the code: " in a (possibly quoted-printable) message.
fn code_in(message: &str) -> Option<String> {
    let text = message.replace("=\n", "").replace("=3D", "=");
    let at = text.find("enter the code: ")? + "enter the code: ".len();
    let code: String = text[at..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    (code.len() == 6).then_some(code)
}

#[tokio::test]
async fn smtp_delivers_the_confirmation_and_its_code_verifies() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let (sender, mut received) = mpsc::unbounded_channel();
    tokio::spawn(fake_smtp(listener, sender));
    let api = Api::start_with(|config| {
        config.auth.smtp = Some(SmtpConfig {
            host: "127.0.0.1".into(),
            port,
            user: None,
            pass: None,
            admin_email: "noreply@example.com".into(),
            sender_name: Some("Manifold".into()),
            tls: SmtpTls::None,
        });
    })
    .await;

    // With SMTP configured, autoconfirm is off: sign-up answers the bare user.
    let signup = api
        .post(
            "/auth/v1/signup",
            json!({"email": "mailed@example.com", "password": "password-1"}),
        )
        .await;
    assert_eq!(signup.status, 200, "{}", signup.body);
    assert!(signup.body.get("access_token").is_none());
    assert_eq!(signup.body["email"], "mailed@example.com");
    assert!(signup.body["confirmation_sent_at"].is_string());

    let message = tokio::time::timeout(Duration::from_secs(10), received.recv())
        .await
        .expect("no mail within 10 s")
        .unwrap();
    assert!(
        message.contains("Subject: Confirm Your Signup"),
        "{message}"
    );
    assert!(message.contains("mailed@example.com"));
    let code = code_in(&message).unwrap_or_else(|| panic!("no code in {message}"));
    assert_eq!(
        api.scalar_i64("select count(*) from auth.dev_mailbox")
            .await,
        0
    );

    // Unconfirmed: password sign-in is refused until the code is verified.
    let early = api
        .post(
            "/auth/v1/token?grant_type=password",
            json!({"email": "mailed@example.com", "password": "password-1"}),
        )
        .await;
    assert_eq!(early.body["code"], "email_not_confirmed");
    let verified = api
        .post(
            "/auth/v1/verify",
            json!({"type": "signup", "email": "mailed@example.com", "token": code}),
        )
        .await;
    assert_eq!(verified.status, 200, "{}", verified.body);
    assert!(verified.body["user"]["email_confirmed_at"].is_string());

    // A second mail to the same address within 60 s is refused.
    let resend = api
        .post("/auth/v1/otp", json!({"email": "mailed@example.com"}))
        .await;
    assert_eq!(resend.status, 200, "{}", resend.body);
    let throttled = api
        .post("/auth/v1/otp", json!({"email": "mailed@example.com"}))
        .await;
    assert_eq!(throttled.status, 429);
    assert_eq!(throttled.body["code"], "over_email_send_rate_limit");
}
