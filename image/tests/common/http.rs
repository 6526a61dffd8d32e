//! A tiny HTTP/1.1 server on 127.0.0.1 for ADD's URL tests (no internet): fixed
//! files, each with a Last-Modified header; anything else is a 404. It serves
//! until the test process exits.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;

pub struct File {
    pub path: &'static str,
    pub body: Vec<u8>,
    pub last_modified: &'static str,
}

/// Starts serving `files`; returns the base URL (`http://127.0.0.1:PORT`).
pub fn serve(files: Vec<File>) -> String {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", l.local_addr().unwrap());
    std::thread::spawn(move || {
        for conn in l.incoming() {
            let Ok(mut c) = conn else { continue };
            let mut r = BufReader::new(c.try_clone().unwrap());
            let mut line = String::new();
            if r.read_line(&mut line).is_err() {
                continue;
            }
            let path = line.split_whitespace().nth(1).unwrap_or("").to_string();
            loop {
                let mut h = String::new();
                if r.read_line(&mut h).map(|n| n == 0).unwrap_or(true) || h.trim().is_empty() {
                    break;
                }
            }
            let _ = match files.iter().find(|f| f.path == path) {
                Some(f) => c
                    .write_all(
                        format!(
                            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nLast-Modified: {}\r\nConnection: close\r\n\r\n",
                            f.body.len(),
                            f.last_modified
                        )
                        .as_bytes(),
                    )
                    .and_then(|_| c.write_all(&f.body)),
                None => c.write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"),
            };
        }
    });
    url
}
