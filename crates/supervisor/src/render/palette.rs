//! The colours shared by the images: one meaning per colour in every view.

use plotters::style::RGBColor;

/// Fill colour of improved nodes (tree) and improvement dots (progress plot).
pub const IMPROVED_GREEN: RGBColor = RGBColor(44, 160, 44);
/// Fill colour of failed nodes (tree) and failure crosses (progress plot).
pub const FAILED_RED: RGBColor = RGBColor(214, 39, 40);
/// Fill colour of nodes in an active phase (preparing … planning).
pub const RUNNING_BLUE: RGBColor = RGBColor(31, 119, 180);
/// Fill colour of nodes completed without improvement, and of the other dots of the plot.
pub const COMPLETED_GREY: RGBColor = RGBColor(178, 178, 178);
/// Border colour of the best node (a thick outline, with a thin black line outside).
pub const BEST_GOLD: RGBColor = RGBColor(255, 184, 0);
/// Colour of the running-best step line of the progress plot.
pub const BEST_LINE: RGBColor = RGBColor(20, 90, 30);
/// Ring colour of unconfirmed wins (beat the best at first, not held by the re-runs).
pub const UNCONFIRMED_ORANGE: RGBColor = RGBColor(255, 127, 14);
/// Colour of the error bars (min–max of an experiment's runs).
pub const SPREAD_BAR: RGBColor = RGBColor(90, 105, 135);
