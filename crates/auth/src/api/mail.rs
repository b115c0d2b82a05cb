//! Outgoing mail: SMTP through lettre (rustls) when configured, else the built-in dev mailbox
//! (rows in `auth.dev_mailbox`, readable by the service role at `/admin/mailbox`). Messages carry
//! GoTrue's default subjects, a link to `/verify` and the one-time code.

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use lettre::message::{Mailbox, MultiPart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};
use manifold_config::{SmtpConfig, SmtpTls};

use super::db::{Tx, binds, query};
use super::error::AuthError;

/// One message to deliver.
#[derive(Debug, Clone)]
pub(crate) struct Mail {
    pub(crate) to: String,
    pub(crate) subject: &'static str,
    /// `signup`, `invite`, `magiclink`, `recovery`, `email_change`, `reauthentication`.
    pub(crate) kind: &'static str,
    pub(crate) otp: String,
    pub(crate) link: Option<String>,
}

impl Mail {
    fn text(&self) -> String {
        let mut body = String::new();
        if let Some(link) = &self.link {
            body.push_str("Follow this link:\n");
            body.push_str(link);
            body.push_str("\n\nAlternatively, enter the code: ");
        } else {
            body.push_str("Enter the code: ");
        }
        body.push_str(&self.otp);
        body.push('\n');
        body
    }

    fn html(&self) -> String {
        let mut body = format!("<h2>{}</h2>", escape(self.subject));
        if let Some(link) = &self.link {
            body.push_str(&format!(
                "<p>Follow this link:</p><p><a href=\"{}\">{}</a></p><p>Alternatively, enter the code: {}</p>",
                escape(link),
                escape(self.subject),
                escape(&self.otp)
            ));
        } else {
            body.push_str(&format!("<p>Enter the code: {}</p>", escape(&self.otp)));
        }
        body
    }
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Where mail goes.
pub(crate) enum Mailer {
    /// A real SMTP server, with GoTrue's global hourly send limit.
    Smtp {
        transport: AsyncSmtpTransport<Tokio1Executor>,
        from: Mailbox,
        limiter: Option<Arc<DefaultDirectRateLimiter>>,
    },
    /// Stored in `auth.dev_mailbox` (development and tests).
    DevMailbox,
}

impl std::fmt::Debug for Mailer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Smtp { from, .. } => write!(f, "Mailer::Smtp(from {from})"),
            Self::DevMailbox => f.write_str("Mailer::DevMailbox"),
        }
    }
}

/// Why the SMTP settings are unusable.
#[derive(Debug, thiserror::Error)]
pub enum MailConfigError {
    /// The sender address does not parse.
    #[error("auth.smtp.admin_email is not a valid address")]
    Sender(#[source] lettre::address::AddressError),
    /// The transport could not be built (e.g. TLS setup).
    #[error("cannot set up SMTP to {host}")]
    Transport {
        /// The server.
        host: String,
        /// Why.
        #[source]
        source: lettre::transport::smtp::Error,
    },
}

impl Mailer {
    /// SMTP when configured, else the dev mailbox.
    pub(crate) fn new(
        smtp: Option<&SmtpConfig>,
        sent_per_hour: u32,
    ) -> Result<Self, MailConfigError> {
        let Some(smtp) = smtp else {
            return Ok(Self::DevMailbox);
        };
        let address = smtp.admin_email.parse().map_err(MailConfigError::Sender)?;
        let from = Mailbox::new(smtp.sender_name.clone(), address);
        let builder = match smtp.tls {
            SmtpTls::Implicit => AsyncSmtpTransport::<Tokio1Executor>::relay(&smtp.host),
            SmtpTls::Starttls => AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(&smtp.host),
            SmtpTls::None => Ok(AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(
                &smtp.host,
            )),
        }
        .map_err(|source| MailConfigError::Transport {
            host: smtp.host.clone(),
            source,
        })?;
        let mut builder = builder
            .port(smtp.port)
            .timeout(Some(Duration::from_secs(20)));
        if let (Some(user), Some(pass)) = (&smtp.user, &smtp.pass) {
            builder = builder.credentials(Credentials::new(user.clone(), pass.expose().to_owned()));
        }
        let limiter = NonZeroU32::new(sent_per_hour).and_then(|per_hour| {
            Quota::with_period(Duration::from_secs(3600) / per_hour.get())
                .map(|quota| Arc::new(RateLimiter::direct(quota.allow_burst(per_hour))))
        });
        Ok(Self::Smtp {
            transport: builder.build(),
            from,
            limiter,
        })
    }

    /// True when mail really leaves the machine.
    pub(crate) fn is_smtp(&self) -> bool {
        matches!(self, Self::Smtp { .. })
    }

    /// Logs an outgoing message. Only the dev mailbox logs the recipient, link and code (at
    /// debug level), as the contract asks for a server without SMTP; once SMTP is configured the
    /// log never carries them, since they would let anyone reading logs sign in as the user.
    fn log_outgoing(&self, mail: &Mail) {
        tracing::info!(
            kind = mail.kind,
            subject = mail.subject,
            smtp = self.is_smtp(),
            "sending auth mail"
        );
        if let Self::DevMailbox = self {
            tracing::debug!(
                to = %mail.to,
                kind = mail.kind,
                otp = %mail.otp,
                link = mail.link.as_deref().unwrap_or(""),
                "dev mailbox message"
            );
        }
    }

    /// Delivers `mail`; the dev mailbox stores it in the request's transaction.
    pub(crate) async fn send(&self, tx: &Tx, mail: Mail) -> Result<(), AuthError> {
        // Both mailers refuse what SMTP could not deliver to, so the dev mailbox answers as
        // production would; GoTrue's mailer check answers 400 `email_address_invalid`.
        let to: Mailbox = mail.to.parse().map_err(|_| {
            AuthError::bad_request(
                "email_address_invalid",
                format!("Email address \"{}\" is invalid", mail.to),
            )
        })?;
        self.log_outgoing(&mail);
        match self {
            Self::DevMailbox => {
                tx.exec(&query(
                    "insert into auth.dev_mailbox (recipient, subject, kind, body, otp, link) \
                     values ($1, $2, $3, $4, $5, $6)",
                    binds![
                        mail.to.clone(),
                        mail.subject,
                        mail.kind,
                        mail.text(),
                        mail.otp.clone(),
                        mail.link.clone(),
                    ],
                ))
                .await
            }
            Self::Smtp {
                transport,
                from,
                limiter,
            } => {
                if let Some(limiter) = limiter
                    && limiter.check().is_err()
                {
                    return Err(AuthError::new(
                        http::StatusCode::TOO_MANY_REQUESTS,
                        "over_email_send_rate_limit",
                        "Email rate limit exceeded",
                    ));
                }
                let message = lettre::Message::builder()
                    .from(from.clone())
                    .to(to)
                    .subject(mail.subject)
                    .multipart(MultiPart::alternative_plain_html(mail.text(), mail.html()))
                    .map_err(AuthError::internal)?;
                transport.send(message).await.map_err(|error| {
                    AuthError::internal(format!("smtp delivery failed: {error}"))
                })?;
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_carry_link_and_code() {
        let mail = Mail {
            to: "a@b.io".into(),
            subject: "Confirm Your Signup",
            kind: "signup",
            otp: "123456".into(),
            link: Some("http://x/verify?token=t&type=signup".into()),
        };
        assert!(mail.text().contains("http://x/verify?token=t&type=signup"));
        assert!(mail.text().contains("123456"));
        assert!(mail.html().contains("&amp;type=signup"));
    }

    #[test]
    fn dev_mailbox_without_smtp() {
        assert!(!Mailer::new(None, 30).unwrap().is_smtp());
    }

    /// Everything logged while `run` runs, at debug level and above.
    fn captured_log(run: impl FnOnce()) -> String {
        #[derive(Clone, Default)]
        struct Buffer(Arc<std::sync::Mutex<Vec<u8>>>);
        impl std::io::Write for Buffer {
            fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
                self.0.lock().unwrap().extend_from_slice(bytes);
                Ok(bytes.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let buffer = Buffer::default();
        let writer = buffer.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::DEBUG)
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .finish();
        tracing::subscriber::with_default(subscriber, run);
        let bytes = buffer.0.lock().unwrap().clone();
        String::from_utf8(bytes).unwrap()
    }

    #[tokio::test]
    async fn only_the_dev_mailbox_logs_links_and_codes() {
        let mail = Mail {
            to: "a@b.io".into(),
            subject: "Your Magic Link",
            kind: "magiclink",
            otp: "314159".into(),
            link: Some("http://x/verify?token=secret-hash&type=magiclink".into()),
        };
        let dev = captured_log(|| Mailer::DevMailbox.log_outgoing(&mail));
        assert!(dev.contains("314159"), "{dev}");
        assert!(dev.contains("secret-hash"), "{dev}");
        assert!(dev.contains("a@b.io"), "{dev}");

        let smtp = Mailer::new(
            Some(&SmtpConfig {
                host: "127.0.0.1".into(),
                port: 2525,
                user: None,
                pass: None,
                admin_email: "auth@example.com".into(),
                sender_name: None,
                tls: SmtpTls::None,
            }),
            30,
        )
        .unwrap();
        let logged = captured_log(|| smtp.log_outgoing(&mail));
        assert!(logged.contains("sending auth mail"), "{logged}");
        assert!(!logged.contains("314159"), "{logged}");
        assert!(!logged.contains("secret-hash"), "{logged}");
        assert!(!logged.contains("a@b.io"), "{logged}");
    }
}
