//! HTTP Signature auth (Joyent/Triton scheme) for updates servers and Manta.
