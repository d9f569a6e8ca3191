import { StrictMode } from "react";
import { createRoot } from "react-dom/client";
import { App } from "./App";
import { browserTransport, createApi } from "./api/client";
import { authInterceptor, fetchSessionHttp, sessionCredentialStorage, SessionStore } from "./auth/session";
import { initialTheme } from "./lib/theme";
import "./styles.css";

document.documentElement.dataset.theme = initialTheme();

const session = new SessionStore({ http: fetchSessionHttp(), storage: sessionCredentialStorage() });
const api = createApi(browserTransport([authInterceptor(session)]));

createRoot(document.getElementById("root")!).render(
  <StrictMode>
    <App api={api} session={session} />
  </StrictMode>,
);
