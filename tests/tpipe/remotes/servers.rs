//! Real servers on loopback for the remote tests (and the pull benchmark): nginx with its WebDAV
//! modules, and moto's S3 server. Each takes a free port and a temporary folder and is killed
//! when dropped. A missing server fails loudly with the command that installs it: CI installs it,
//! and a test that quietly skips would hide a broken remote.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const NGINX_INSTALL: &str = "apt-get install -y nginx-extras";
const MOTO_INSTALL: &str = "pip install 'moto[server]'";
const DAV_EXT_MODULE: &str = "/usr/lib/nginx/modules/ngx_http_dav_ext_module.so";

/// A port nothing listens on right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .expect("bind a loopback port")
        .local_addr()
        .unwrap()
        .port()
}

fn find_program(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([
            PathBuf::from("/usr/sbin"),
            PathBuf::from("/usr/local/sbin"),
            PathBuf::from("/usr/local/bin"),
        ])
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
}

/// Waits until `port` accepts connections; fails with `log` if the server died or never came up.
fn wait_for_port(child: &mut Child, port: u16, what: &str, log: &Path, patience: Duration) {
    let started = Instant::now();
    loop {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return;
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!(
                "{what} exited ({status}) before listening:\n{}",
                std::fs::read_to_string(log).unwrap_or_default()
            );
        }
        if started.elapsed() > patience {
            let _ = child.kill();
            panic!(
                "{what} did not listen on port {port} within {patience:?}:\n{}",
                std::fs::read_to_string(log).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A certificate authority made for one test (openssl), and a certificate it signed for
/// 127.0.0.1: a lab's own HTTPS.
pub struct TestCa {
    pub ca_certificate: PathBuf,
    pub server_certificate: PathBuf,
    pub server_key: PathBuf,
}

fn openssl(folder: &Path, args: &[&str]) {
    let output = Command::new("openssl")
        .current_dir(folder)
        .args(args)
        .output()
        .unwrap_or_else(|error| panic!("openssl is not installed ({error}); the HTTPS remote tests need it (install: `apt-get install -y openssl`)"));
    assert!(
        output.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

impl TestCa {
    pub fn generate(folder: &Path) -> TestCa {
        std::fs::create_dir_all(folder).unwrap();
        let ec = [
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
        ];
        let mut ca = vec!["req", "-x509"];
        ca.extend(ec);
        ca.extend([
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-days",
            "2",
            "-subj",
            "/CN=tpipe test CA",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ]);
        openssl(folder, &ca);
        let mut request = vec!["req"];
        request.extend(ec);
        request.extend([
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
            "-subj",
            "/CN=127.0.0.1",
        ]);
        openssl(folder, &request);
        std::fs::write(
            folder.join("server.ext"),
            "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=serverAuth\n",
        )
        .unwrap();
        openssl(
            folder,
            &[
                "x509",
                "-req",
                "-in",
                "server.csr",
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-out",
                "server.pem",
                "-days",
                "2",
                "-extfile",
                "server.ext",
            ],
        );
        TestCa {
            ca_certificate: folder.join("ca.pem"),
            server_certificate: folder.join("server.pem"),
            server_key: folder.join("server.key"),
        }
    }
}

/// How a test WebDAV server is protected.
#[derive(Default)]
pub struct WebDavOptions<'a> {
    /// Serve HTTPS with this CA's server certificate.
    pub tls: Option<&'a TestCa>,
    /// Ask for this user and password (`auth_basic`) everywhere.
    pub basic_auth: Option<(&'a str, &'a str)>,
}

/// nginx serving a folder over WebDAV (`dav_methods` for PUT/DELETE/MKCOL, the dav-ext module
/// for PROPFIND), as a team would run it.
pub struct WebDavServer {
    child: Option<Child>,
    port: u16,
    folder: tempfile::TempDir,
    scheme: &'static str,
}

impl WebDavServer {
    pub fn start() -> WebDavServer {
        WebDavServer::start_with(&WebDavOptions::default())
    }

    pub fn start_with(options: &WebDavOptions) -> WebDavServer {
        let nginx = find_program("nginx").unwrap_or_else(|| panic!("nginx is not installed; the WebDAV remote tests need it (install: `{NGINX_INSTALL}`)"));
        assert!(
            Path::new(DAV_EXT_MODULE).is_file(),
            "nginx's WebDAV extension module (PROPFIND) is missing at `{DAV_EXT_MODULE}` (install: `{NGINX_INSTALL}`)"
        );
        let folder = tempfile::tempdir().expect("temporary folder");
        let base = folder.path();
        std::fs::create_dir_all(base.join("root")).unwrap();
        // The upload temp folder sits on the root's file system, so nginx renames uploads into
        // place (atomic) instead of copying them.
        std::fs::create_dir_all(base.join("temp")).unwrap();
        let port = free_port();
        let (listen, scheme) = match options.tls {
            Some(ca) => (
                format!(
                    "listen 127.0.0.1:{port} ssl;\n    ssl_certificate {};\n    ssl_certificate_key {};",
                    ca.server_certificate.display(),
                    ca.server_key.display()
                ),
                "https",
            ),
            None => (format!("listen 127.0.0.1:{port};"), "http"),
        };
        let authentication = match options.basic_auth {
            Some((user, password)) => {
                let output = Command::new("openssl")
                    .args(["passwd", "-apr1", password])
                    .output()
                    .expect("openssl passwd");
                let hash = String::from_utf8(output.stdout).unwrap();
                std::fs::write(base.join("htpasswd"), format!("{user}:{}", hash.trim())).unwrap();
                format!(
                    "auth_basic \"tpipe\";\n    auth_basic_user_file {}/htpasswd;",
                    base.display()
                )
            }
            None => String::new(),
        };
        let config = format!(
            r#"load_module {DAV_EXT_MODULE};
daemon off;
master_process off;
worker_processes 1;
pid {base}/nginx.pid;
error_log {base}/error.log info;
events {{ worker_connections 256; }}
http {{
  access_log {base}/access.log;
  client_body_temp_path {base}/temp/body;
  proxy_temp_path {base}/temp/proxy;
  fastcgi_temp_path {base}/temp/fastcgi;
  uwsgi_temp_path {base}/temp/uwsgi;
  scgi_temp_path {base}/temp/scgi;
  server {{
    {listen}
    {authentication}
    root {base}/root;
    client_max_body_size 0;
    location / {{
      dav_methods PUT DELETE MKCOL COPY MOVE;
      dav_ext_methods PROPFIND OPTIONS;
      create_full_put_path on;
      dav_access user:rw group:rw all:r;
    }}
    # Serves reads, refuses writes (403), like a mirror teammates may only pull from.
    location /read-only/ {{
      dav_methods PUT DELETE MKCOL COPY MOVE;
      dav_ext_methods PROPFIND OPTIONS;
      limit_except GET PROPFIND OPTIONS {{ deny all; }}
    }}
    # Refuses everything (403), like a server whose credentials were revoked.
    location /forbidden/ {{
      deny all;
    }}
    # Every request fails with nginx's HTML error page, like a server that is broken.
    location /broken/ {{
      return 500;
    }}
    # Reads work, every upload fails with nginx's HTML error page, like a server whose worker
    # cannot write its root.
    location /failing/ {{
      dav_methods PUT DELETE MKCOL COPY MOVE;
      dav_ext_methods PROPFIND OPTIONS;
      if ($request_method = PUT) {{ return 500; }}
    }}
  }}
}}
"#,
            base = base.display()
        );
        std::fs::write(base.join("nginx.conf"), config).unwrap();
        let log = base.join("error.log");
        let mut child = Command::new(nginx)
            .arg("-p")
            .arg(base)
            .arg("-c")
            .arg(base.join("nginx.conf"))
            .arg("-e")
            .arg(&log)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start nginx");
        wait_for_port(&mut child, port, "nginx", &log, Duration::from_secs(20));
        WebDavServer {
            child: Some(child),
            port,
            folder,
            scheme,
        }
    }

    /// The remote URL of a folder on the server.
    pub fn url(&self, folder: &str) -> String {
        format!("{}://127.0.0.1:{}/{folder}", self.scheme, self.port)
    }

    /// Everything the server wrote about itself (its logs), to check what it saw.
    pub fn logs(&self) -> String {
        ["access.log", "error.log"]
            .iter()
            .map(|name| std::fs::read_to_string(self.folder.path().join(name)).unwrap_or_default())
            .collect()
    }

    /// Where the server keeps `folder` on disk (to damage entries behind its back).
    pub fn disk_path(&self, folder: &str) -> PathBuf {
        self.folder.path().join("root").join(folder)
    }

    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for WebDavServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// moto's S3-compatible server with one bucket, `tpipe`.
pub struct S3Server {
    child: Option<Child>,
    port: u16,
    _folder: tempfile::TempDir,
}

pub const S3_BUCKET: &str = "tpipe";

impl S3Server {
    pub fn start() -> S3Server {
        let moto =
            find_program("moto_server").unwrap_or_else(|| panic!("moto_server is not installed; the S3 remote tests need it (install: `{MOTO_INSTALL}`)"));
        let folder = tempfile::tempdir().expect("temporary folder");
        let log = folder.path().join("moto.log");
        let port = free_port();
        let mut child = Command::new(moto)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .current_dir(folder.path())
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&log).unwrap())
            .stderr(std::fs::File::create(folder.path().join("moto.err")).unwrap())
            .spawn()
            .expect("start moto_server");
        wait_for_port(
            &mut child,
            port,
            "moto_server",
            &folder.path().join("moto.err"),
            Duration::from_secs(60),
        );
        let server = S3Server {
            child: Some(child),
            port,
            _folder: folder,
        };
        server.create_bucket(S3_BUCKET);
        server
    }

    /// moto takes unsigned requests, so a bare PUT makes a bucket.
    fn create_bucket(&self, bucket: &str) {
        let mut stream = TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(20)))
            .unwrap();
        write!(stream, "PUT /{bucket} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n", self.port).unwrap();
        let mut response = String::new();
        let _ = stream.read_to_string(&mut response);
        assert!(
            response.starts_with("HTTP/1.1 200"),
            "creating bucket `{bucket}` failed:\n{response}"
        );
    }

    pub fn url(&self, prefix: &str) -> String {
        format!("s3://{S3_BUCKET}/{prefix}")
    }

    /// The `AWS_*` settings a teammate would export to reach this server.
    pub fn environment(&self) -> Vec<(String, String)> {
        [
            (
                "AWS_ENDPOINT_URL",
                format!("http://127.0.0.1:{}", self.port),
            ),
            ("AWS_REGION", "us-east-1".to_string()),
            ("AWS_ACCESS_KEY_ID", "tpipe-test".to_string()),
            ("AWS_SECRET_ACCESS_KEY", "tpipe-test-secret".to_string()),
            ("AWS_ALLOW_HTTP", "true".to_string()),
        ]
        .into_iter()
        .map(|(name, value)| (name.to_string(), value))
        .collect()
    }

    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Accepts connections and never answers: a hung server.
pub struct SilentServer {
    pub port: u16,
    _thread: std::thread::JoinHandle<()>,
}

impl SilentServer {
    pub fn start() -> SilentServer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let thread = std::thread::spawn(move || {
            let mut held = Vec::new();
            let started = Instant::now();
            listener.set_nonblocking(true).unwrap();
            // Bounded: the test that uses it is over long before this.
            while started.elapsed() < Duration::from_secs(120) {
                match listener.accept() {
                    Ok((stream, _)) => held.push(stream),
                    Err(_) => std::thread::sleep(Duration::from_millis(20)),
                }
            }
        });
        SilentServer {
            port,
            _thread: thread,
        }
    }
}
