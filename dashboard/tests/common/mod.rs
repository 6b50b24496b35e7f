//! What the dashboard's tests share: a real browser, and metrics streams to point it at.

#![allow(dead_code, unreachable_pub)]

pub mod browser;
pub mod feed;

use hystrix_dashboard::{Dashboard, allow::AllowList};
use tokio::net::TcpListener;

/// A dashboard served on a free loopback port, the proxy allowing `allow`; its base URL.
pub async fn dashboard(allow: &[String]) -> (Dashboard, String) {
    let dashboard = Dashboard::builder()
        .allow(AllowList::parse(allow).unwrap())
        .build()
        .unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(dashboard.clone().serve(listener));
    (dashboard, base)
}

/// A command line as a Hystrix 1.5 app sends it (spec §2.1), with the given counts; the
/// rolling window is 10 s.
pub fn command(name: &str, success: u64, failure: u64, open: bool) -> serde_json::Value {
    let requests = success + failure;
    let error = (failure * 100).checked_div(requests).unwrap_or(0);
    let mut line: serde_json::Value = serde_json::from_str(COMMAND).unwrap();
    let fields = serde_json::json!({
        "name": name, "isCircuitBreakerOpen": open, "errorPercentage": error,
        "errorCount": failure, "requestCount": requests, "rollingCountFailure": failure,
        "rollingCountSuccess": success,
    });
    for (key, value) in fields.as_object().unwrap() {
        line[key] = value.clone();
    }
    line
}

/// Every field of a command line (spec §2.1), in order; the counts are set by [`command`].
const COMMAND: &str = r#"{"type":"HystrixCommand","name":"","group":"G","currentTime":1700000000000,
"isCircuitBreakerOpen":false,"errorPercentage":0,"errorCount":0,"requestCount":0,
"rollingCountBadRequests":0,"rollingCountCollapsedRequests":0,"rollingCountEmit":0,
"rollingCountExceptionsThrown":0,"rollingCountFailure":0,"rollingCountFallbackEmit":0,
"rollingCountFallbackFailure":0,"rollingCountFallbackMissing":0,"rollingCountFallbackRejection":0,
"rollingCountFallbackSuccess":0,"rollingCountResponsesFromCache":0,
"rollingCountSemaphoreRejected":0,"rollingCountShortCircuited":0,"rollingCountSuccess":0,
"rollingCountThreadPoolRejected":0,"rollingCountTimeout":0,"currentConcurrentExecutionCount":0,
"rollingMaxConcurrentExecutionCount":0,"latencyExecute_mean":12,
"latencyExecute":{"0":1,"25":5,"50":10,"75":15,"90":20,"95":25,"99":40,"99.5":50,"100":60},
"latencyTotal_mean":13,
"latencyTotal":{"0":1,"25":5,"50":10,"75":15,"90":20,"95":25,"99":40,"99.5":50,"100":60},
"propertyValue_circuitBreakerRequestVolumeThreshold":20,
"propertyValue_circuitBreakerSleepWindowInMilliseconds":5000,
"propertyValue_circuitBreakerErrorThresholdPercentage":50,
"propertyValue_circuitBreakerForceOpen":false,"propertyValue_circuitBreakerForceClosed":false,
"propertyValue_circuitBreakerEnabled":true,"propertyValue_executionIsolationStrategy":"THREAD",
"propertyValue_executionIsolationThreadTimeoutInMilliseconds":1000,
"propertyValue_executionTimeoutInMilliseconds":1000,
"propertyValue_executionIsolationThreadInterruptOnTimeout":true,
"propertyValue_executionIsolationThreadPoolKeyOverride":null,
"propertyValue_executionIsolationSemaphoreMaxConcurrentRequests":10,
"propertyValue_fallbackIsolationSemaphoreMaxConcurrentRequests":10,
"propertyValue_metricsRollingStatisticalWindowInMilliseconds":10000,
"propertyValue_requestCacheEnabled":true,"propertyValue_requestLogEnabled":true,
"reportingHosts":1,"threadPool":"G"}"#;

/// A thread-pool line (spec §2.2).
pub fn pool(name: &str, executed: u64, queued: u64) -> serde_json::Value {
    serde_json::json!({
        "type": "HystrixThreadPool", "name": name, "currentTime": 1_700_000_000_000u64,
        "currentActiveCount": 1, "currentCompletedTaskCount": 100, "currentCorePoolSize": 10,
        "currentLargestPoolSize": 10, "currentMaximumPoolSize": 10, "currentPoolSize": 10,
        "currentQueueSize": queued, "currentTaskCount": 101,
        "rollingCountThreadsExecuted": executed, "rollingMaxActiveThreads": 3,
        "rollingCountCommandRejections": 0, "propertyValue_queueSizeRejectionThreshold": 5,
        "propertyValue_metricsRollingStatisticalWindowInMilliseconds": 10000, "reportingHosts": 1
    })
}
