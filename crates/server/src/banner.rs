//! What `manifold start` prints once it is ready, like `supabase start`.

use manifold_config::Config;
use manifold_db::bootstrap::describe_target;

use crate::secrets;
use crate::start::{Prepared, masked_db_url};

/// Prints URLs and keys. Secret values are printed on the first run only; later runs point to
/// the keys file and `manifold keys`.
#[allow(
    clippy::print_stdout,
    reason = "the banner is the command's output, as `supabase start` prints it"
)]
pub(crate) fn print(config: &Config, prepared: &Prepared) {
    let api = config.api.public_url();
    let ws = api.replacen("http", "ws", 1);
    let keys = &prepared.secrets.keys;
    let db_url = match (&prepared.cluster, prepared.first_run) {
        (Some(_), true) => prepared.admin_url.clone(),
        (Some(_), false) => masked_db_url(config),
        (None, _) => format!("external: {}", describe_target(&prepared.admin_url)),
    };
    println!("Started manifold.\n");
    println!("         API URL: {api}");
    println!("        REST URL: {api}/rest/v1");
    println!("        Auth URL: {api}/auth/v1");
    println!("     Storage URL: {api}/storage/v1");
    println!("    Realtime URL: {ws}/realtime/v1");
    println!("          DB URL: {db_url}");
    println!("        anon key: {}", keys.anon_key);
    println!(" Publishable key: {}", keys.publishable_key);
    if prepared.first_run {
        println!("      JWT secret: {}", keys.jwt_secret);
        println!("service_role key: {}", keys.service_role_key);
        println!("      Secret key: {}", keys.secret_key);
        println!(
            "\nThese secrets are stored in {} and not printed again.",
            secrets::path(&config.data_dir).display()
        );
    } else {
        println!(
            "\nJWT secret, service_role and secret keys: `manifold keys` (stored in {}).",
            secrets::path(&config.data_dir).display()
        );
    }
}
