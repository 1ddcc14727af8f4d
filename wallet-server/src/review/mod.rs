//! School review: what the `/school` pages and the `/api/v1/school` endpoints share — query
//! filters, CSV export, the meals chart, texts in Kazakh and Russian, terminal actions.

pub mod chart;
pub mod csv;
pub mod export;
pub mod params;
pub mod states;
pub mod terminals;
pub mod texts;
