//! Progenitor client for IMGAPI, generated from openapi/imgapi.json
