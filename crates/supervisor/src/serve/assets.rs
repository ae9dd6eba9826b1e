//! The page's files, embedded in the binary (no CDN: the dashboard works offline): the HTML
//! shell, the style sheet, the scripts (hand-written canvas and SVG drawing, no chart library)
//! and the font the views use (DejaVu Sans, shared with the PNG renderer).

use std::sync::OnceLock;

use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::render::font::FONT_BYTES;

/// One embedded file.
#[derive(Debug)]
pub struct Asset {
    /// Its name under `/assets/`.
    pub name: &'static str,
    /// Its content type.
    pub content_type: &'static str,
    /// Its bytes.
    pub bytes: &'static [u8],
}

const JS: &str = "text/javascript; charset=utf-8";

/// Every embedded file.
pub const ASSETS: &[Asset] = &[
    Asset {
        name: "index.html",
        content_type: "text/html; charset=utf-8",
        bytes: include_bytes!("../../assets/web/index.html"),
    },
    Asset {
        name: "app.css",
        content_type: "text/css; charset=utf-8",
        bytes: include_bytes!("../../assets/web/app.css"),
    },
    Asset {
        name: "app.js",
        content_type: JS,
        bytes: include_bytes!("../../assets/web/app.js"),
    },
    Asset {
        name: "util.js",
        content_type: JS,
        bytes: include_bytes!("../../assets/web/util.js"),
    },
    Asset {
        name: "chart.js",
        content_type: JS,
        bytes: include_bytes!("../../assets/web/chart.js"),
    },
    Asset {
        name: "overview.js",
        content_type: JS,
        bytes: include_bytes!("../../assets/web/overview.js"),
    },
    Asset {
        name: "table.js",
        content_type: JS,
        bytes: include_bytes!("../../assets/web/table.js"),
    },
    Asset {
        name: "tree.js",
        content_type: JS,
        bytes: include_bytes!("../../assets/web/tree.js"),
    },
    Asset {
        name: "node.js",
        content_type: JS,
        bytes: include_bytes!("../../assets/web/node.js"),
    },
    Asset {
        name: "dejavu-sans.ttf",
        content_type: "font/ttf",
        bytes: FONT_BYTES,
    },
];

/// FNV-1a of every asset, as entity tags (computed once).
fn etags() -> &'static Vec<String> {
    static TAGS: OnceLock<Vec<String>> = OnceLock::new();
    TAGS.get_or_init(|| {
        ASSETS
            .iter()
            .map(|a| {
                let h = a.bytes.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| {
                    (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
                });
                format!("\"{h:016x}\"")
            })
            .collect()
    })
}

/// The response for `/assets/{name}` (or the HTML shell): the bytes with their type and entity
/// tag, `304` when the browser has them, `404` for an unknown name.
pub fn serve(name: &str, headers: &HeaderMap) -> Response {
    let Some(i) = ASSETS.iter().position(|a| a.name == name) else {
        return (StatusCode::NOT_FOUND, format!("no asset {name}\n")).into_response();
    };
    let asset = &ASSETS[i];
    let tag = &etags()[i];
    if headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v == tag)
    {
        return (StatusCode::NOT_MODIFIED, [(header::ETAG, tag.clone())]).into_response();
    }
    (
        [
            (header::CONTENT_TYPE, asset.content_type.to_owned()),
            (header::ETAG, tag.clone()),
            (header::CACHE_CONTROL, "no-cache".to_owned()),
        ],
        asset.bytes,
    )
        .into_response()
}
