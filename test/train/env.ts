/**
 * Imported first by every training test: the engine's thread count is fixed when jax-js is first imported,
 * and these tests run single-threaded (deterministic, and no worker threads keep the process alive).
 */
process.env.TTRL_THREADS = "1";
