// The login page: say so when the last try failed (the server sends ?failed=1).
const failed = new URLSearchParams(location.search).get("failed");
document.getElementById("failed").hidden = failed !== "1";
