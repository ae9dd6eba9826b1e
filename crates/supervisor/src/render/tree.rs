//! `hypothesis_tree.png`: the hypothesis tree, laid out tidily and drawn by status.
//!
//! - [`layout`]: the pure tidy layout (parents centred above their children, subtrees never
//!   overlap).
//! - `rows`: a tree too wide for one row is wrapped: the first row holds the trunk (the
//!   nodes whose subtree is wider than a row), later rows hold whole subtrees side by side, each
//!   with a stub naming its parent. A tree too deep for one row is first cut into pieces of at
//!   most a row's height (about 4,000 px), which are then packed the same way.
//! - [`scale`]: the largest of a few scales (slot width, box size, font size) that keeps the
//!   image within [`MAX_SIDE`] pixels per side and [`PIXEL_BUDGET`] pixels in all.
//! - `draw`: the picture. Labels are elided (`…`) to the room they have (one slot), so
//!   they never overlap.

mod draw;
pub mod layout;
mod rows;
pub mod scale;

pub use draw::{render_tree, status_fill};
pub use layout::{TreeLayout, tidy_layout};
pub use scale::{MAX_ROW_WIDTH, MAX_SIDE, PIXEL_BUDGET};
